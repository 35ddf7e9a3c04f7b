// Following a report as it changes, from `GET /v1/reports/{id}/events` (Server-Sent Events:
// `status`, `match`, `resolved`, `deleted`, heartbeats). An event says what changed; the page
// then asks for the report again. When the stream is not there (an old service, an API key the
// browser cannot send with EventSource, a lost connection), it reconnects with a growing wait,
// and meanwhile looks at the report now and then.
const FIRST_WAIT = 1000;
const LONGEST_WAIT = 60000;

/** Calls `changed()` when the report `id` may have changed, `deleted()` when it is gone;
 *  `pending()` says whether its photos are still being prepared (then it looks more often while
 *  the stream is down). Returns what stops it all. */
export function follow(id, { changed, deleted, pending }) {
  let source = null;
  let wait = FIRST_WAIT;
  let reconnect = null;
  let look = null;
  let stopped = false;

  // While the stream is down: a look every 2 s while the photos are prepared, else every 10 s.
  const lookNowAndThen = () => {
    if (look || stopped) return;
    look = setTimeout(() => { look = null; changed(); if (!source || source.readyState !== EventSource.OPEN) lookNowAndThen(); }, pending() ? 2000 : 10000);
  };
  const connect = () => {
    if (stopped || typeof EventSource === "undefined") { lookNowAndThen(); return; }
    source = new EventSource(`/v1/reports/${id}/events`);
    source.addEventListener("open", () => {
      wait = FIRST_WAIT;
      clearTimeout(look);
      look = null;
      // What happened while it was down.
      changed();
    });
    for (const name of ["status", "match", "resolved"]) source.addEventListener(name, () => changed());
    source.addEventListener("deleted", () => { stop(); deleted(); });
    source.addEventListener("error", () => {
      lookNowAndThen();
      // CONNECTING: the browser tries again by itself. CLOSED: it gave up (an HTTP error), so
      // this page tries again, waiting longer each time.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        clearTimeout(reconnect);
        reconnect = setTimeout(connect, wait);
        wait = Math.min(wait * 2, LONGEST_WAIT);
      }
    });
  };
  const stop = () => {
    stopped = true;
    if (source) source.close();
    clearTimeout(reconnect);
    clearTimeout(look);
  };
  connect();
  return stop;
}

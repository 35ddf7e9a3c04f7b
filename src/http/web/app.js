// lookalike's page: search by photo, post a report and follow it, a report's page, and the
// operators' view. Plain JavaScript modules (src/http/web/js/), no build step; each view module
// registers its addresses with the router, so a new view is one more import here.
import { addRoute, start } from "./js/router.js";
import { searchView } from "./js/search.js";
import { newReportView } from "./js/post.js";
import { reportView } from "./js/report.js";
import { statusView } from "./js/status.js";
import { mineView } from "./js/mine.js";
import { nearbyView } from "./js/nearby.js";

const ID = "([0-9a-f-]{36})";
addRoute(/^\/$/, searchView, { nav: "search", isFallback: true });
addRoute(/^\/new$/, newReportView, { nav: "new" });
addRoute(new RegExp(`^/reports?/${ID}$`, "i"), reportView);
addRoute(/^\/mine$/, mineView, { nav: "mine" });
// The operators' view: at its own address, not in the public menu.
addRoute(/^\/status$/, statusView);
addRoute(/^\/nearby$/, nearbyView, { nav: "nearby" });

start();

//! The gate's queue policy, apart from any model or clock: two priorities in arrival order, removal
//! of one waiter by its id, and batch taking (interactive first, skipping callers that left).

use std::collections::BTreeMap;

/// Who is asking: interactive requests (search, embeddings endpoint) go before background jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// A person is waiting for the answer.
    Interactive,
    /// Background work (report embedding jobs).
    Background,
}

impl Priority {
    pub(super) fn index(self) -> usize {
        match self {
            Priority::Interactive => 0,
            Priority::Background => 1,
        }
    }
}

/// A waiter's place in the queue: its priority and its arrival number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueId {
    /// Its queue.
    pub priority: Priority,
    seq: u64,
}

/// Waiters by priority, each queue in arrival order. Ids grow with every push, so a queue keyed
/// by id is its arrival order, and one waiter is found or removed in O(log n).
#[derive(Debug)]
pub struct GateQueue<T> {
    queues: [BTreeMap<u64, T>; 2],
    next_seq: u64,
}

impl<T> Default for GateQueue<T> {
    fn default() -> Self {
        GateQueue {
            queues: [BTreeMap::new(), BTreeMap::new()],
            next_seq: 0,
        }
    }
}

/// What `take_batch` took.
#[derive(Debug)]
pub struct Batch<T> {
    /// The waiters to run, interactive first, each queue in arrival order.
    pub waiters: Vec<T>,
    /// Waiters dropped on the way because their caller had left.
    pub cancelled: usize,
}

impl<T> GateQueue<T> {
    /// Appends `waiter` to its priority's queue.
    pub fn push(&mut self, priority: Priority, waiter: T) -> QueueId {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queues[priority.index()].insert(seq, waiter);
        QueueId { priority, seq }
    }

    /// Whether the waiter is still queued (not yet taken into a batch, nor removed).
    pub fn contains(&self, id: QueueId) -> bool {
        self.queues[id.priority.index()].contains_key(&id.seq)
    }

    /// Takes the waiter out of its queue, if it is still there.
    pub fn remove(&mut self, id: QueueId) -> Option<T> {
        self.queues[id.priority.index()].remove(&id.seq)
    }

    /// Waiters queued at `priority`.
    pub fn len(&self, priority: Priority) -> usize {
        self.queues[priority.index()].len()
    }

    /// Whether no one waits.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(BTreeMap::is_empty)
    }

    /// Waiters that would run before a new one at `priority`: its own queue, and for background
    /// work the interactive queue too.
    pub fn ahead_of(&self, priority: Priority) -> usize {
        match priority {
            Priority::Interactive => self.len(Priority::Interactive),
            Priority::Background => {
                self.len(Priority::Interactive) + self.len(Priority::Background)
            }
        }
    }

    /// Up to `max` waiters, interactive first, each queue in arrival order; waiters for which
    /// `still_wanted` is false (their caller left) are dropped and counted, not taken.
    pub fn take_batch(&mut self, max: usize, still_wanted: impl Fn(&T) -> bool) -> Batch<T> {
        let mut batch = Batch {
            waiters: Vec::with_capacity(max),
            cancelled: 0,
        };
        for queue in &mut self.queues {
            while batch.waiters.len() < max {
                let Some((_, waiter)) = queue.pop_first() else {
                    break;
                };
                if still_wanted(&waiter) {
                    batch.waiters.push(waiter);
                } else {
                    batch.cancelled += 1;
                }
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactive_waiters_are_taken_first_each_queue_in_arrival_order() {
        let mut q = GateQueue::default();
        q.push(Priority::Background, "b1");
        q.push(Priority::Interactive, "i1");
        q.push(Priority::Background, "b2");
        q.push(Priority::Interactive, "i2");
        assert_eq!(q.ahead_of(Priority::Interactive), 2);
        assert_eq!(q.ahead_of(Priority::Background), 4);
        assert_eq!(q.take_batch(3, |_| true).waiters, ["i1", "i2", "b1"]);
        assert_eq!(q.take_batch(3, |_| true).waiters, ["b2"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_waiter_is_found_and_removed_by_its_id() {
        let mut q = GateQueue::default();
        let ids: Vec<_> = (0..5).map(|i| q.push(Priority::Interactive, i)).collect();
        assert!(q.contains(ids[2]));
        assert_eq!(q.remove(ids[2]), Some(2));
        assert!(!q.contains(ids[2]));
        assert_eq!(q.remove(ids[2]), None);
        assert_eq!(q.take_batch(10, |_| true).waiters, [0, 1, 3, 4]);
        // Taken into a batch: no longer queued.
        assert!(!q.contains(ids[0]));
    }

    #[test]
    fn callers_that_left_are_dropped_and_do_not_count_against_the_batch() {
        let mut q = GateQueue::default();
        for i in 0..6 {
            q.push(Priority::Background, i);
        }
        let batch = q.take_batch(2, |i| i % 2 == 1);
        assert_eq!(batch.waiters, [1, 3]);
        assert_eq!(batch.cancelled, 2);
        assert_eq!(q.len(Priority::Background), 2);
    }
}

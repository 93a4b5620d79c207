//! A stream adapter that passes a poll on to its stream only when the stream asked to be polled.
//!
//! A connection's task polls its socket's read half every time it goes back to waiting, which
//! under fan-out is once per Transition it sends. Reading from a WebSocket that has nothing to read
//! is not free: tungstenite zeroes its read buffer (4 KiB, cold with thousands of connections)
//! before it learns that the socket would block. Behind this adapter, the read half is polled again
//! only after it woke the task (data arrived, a lock it waited on was released), or after it
//! returned an item.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::{ArcWake, AtomicWaker, waker_ref};
use futures_util::{Stream, StreamExt};

pub(crate) struct WakeGated<S> {
    stream: S,
    gate: Arc<Gate>,
    /// The stream returned `Pending` when it was last polled: it will wake the gate when it can
    /// make progress, and a poll before then would return `Pending` again.
    pending: bool,
}

/// The waker the inner stream is given: it records the wake-up and wakes the task.
#[derive(Default)]
struct Gate {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl ArcWake for Gate {
    fn wake_by_ref(gate: &Arc<Gate>) {
        gate.woken.store(true, Ordering::Release);
        gate.task.wake();
    }
}

impl<S> WakeGated<S> {
    pub(crate) fn new(stream: S) -> WakeGated<S> {
        WakeGated { stream, gate: Arc::default(), pending: false }
    }
}

impl<S: Stream + Unpin> Stream for WakeGated<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        // Registered before the flag is read: a wake-up after the read wakes this task again.
        this.gate.task.register(cx.waker());
        if this.pending && !this.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = waker_ref(&this.gate);
        let polled = this.stream.poll_next_unpin(&mut Context::from_waker(&waker));
        this.pending = polled.is_pending();
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::task::Waker;

    use futures_util::task::noop_waker_ref;

    use super::*;

    /// A queue of items: a stream that counts the polls reaching it and wakes the last one that
    /// found it empty when an item is sent or the sender is dropped.
    #[derive(Default)]
    struct Pipe {
        items: VecDeque<u32>,
        closed: bool,
        waiting: Option<Waker>,
    }

    struct Sender(Arc<Mutex<Pipe>>);

    impl Sender {
        fn send(&self, item: u32) {
            let mut pipe = self.0.lock().expect("not poisoned");
            pipe.items.push_back(item);
            if let Some(waiting) = pipe.waiting.take() {
                waiting.wake();
            }
        }
    }

    impl Drop for Sender {
        fn drop(&mut self) {
            let mut pipe = self.0.lock().expect("not poisoned");
            pipe.closed = true;
            if let Some(waiting) = pipe.waiting.take() {
                waiting.wake();
            }
        }
    }

    struct Counted {
        pipe: Arc<Mutex<Pipe>>,
        polls: Arc<AtomicUsize>,
    }

    impl Stream for Counted {
        type Item = u32;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            let mut pipe = self.pipe.lock().expect("not poisoned");
            match pipe.items.pop_front() {
                Some(item) => Poll::Ready(Some(item)),
                None if pipe.closed => Poll::Ready(None),
                None => {
                    pipe.waiting = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    /// Counts the wake-ups of the task polling the gated stream.
    #[derive(Default)]
    struct Task {
        wakes: AtomicUsize,
    }

    impl ArcWake for Task {
        fn wake_by_ref(task: &Arc<Task>) {
            task.wakes.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn gated() -> (Sender, WakeGated<Counted>, Arc<AtomicUsize>) {
        let pipe = Arc::new(Mutex::new(Pipe::default()));
        let polls = Arc::new(AtomicUsize::new(0));
        (Sender(Arc::clone(&pipe)), WakeGated::new(Counted { pipe, polls: Arc::clone(&polls) }), polls)
    }

    #[test]
    fn polls_without_a_wake_up_do_not_reach_the_stream() {
        let (sender, mut stream, polls) = gated();
        let task = Arc::new(Task::default());
        let waker = waker_ref(&task);
        let mut cx = Context::from_waker(&waker);
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1, "the first poll goes through");
        for _ in 0..10 {
            assert!(stream.poll_next_unpin(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1, "nothing woke the stream");
        assert_eq!(task.wakes.load(Ordering::Relaxed), 0);

        sender.send(7);
        assert_eq!(task.wakes.load(Ordering::Relaxed), 1, "the stream's wake-up reaches the task");
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(7)));
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn after_an_item_the_next_poll_reaches_the_stream() {
        let (sender, mut stream, polls) = gated();
        let mut cx = Context::from_waker(noop_waker_ref());
        sender.send(1);
        sender.send(2);
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(1)));
        // No wake-up since (the items were queued before the first poll), yet more may be ready.
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(2)));
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 3);
        drop(sender);
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(None), "the end wakes the stream too");
    }

    #[test]
    fn a_wake_up_between_polls_is_not_lost_when_the_task_changes_its_waker() {
        let (sender, mut stream, _) = gated();
        let first = Arc::new(Task::default());
        assert!(stream.poll_next_unpin(&mut Context::from_waker(&waker_ref(&first))).is_pending());
        let second = Arc::new(Task::default());
        assert!(stream.poll_next_unpin(&mut Context::from_waker(&waker_ref(&second))).is_pending());
        sender.send(3);
        assert_eq!(first.wakes.load(Ordering::Relaxed), 0, "the newest waker is the one woken");
        assert_eq!(second.wakes.load(Ordering::Relaxed), 1);
        assert_eq!(stream.poll_next_unpin(&mut Context::from_waker(&waker_ref(&second))), Poll::Ready(Some(3)));
    }
}

//! A thread that runs until its handle is dropped, for the store's background work (lease renewal,
//! a replica's follower).

use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

pub(crate) struct Background {
    /// Nothing is ever sent: dropping it disconnects the channel, which tells the thread to stop.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Runs `work` on a thread named `name`; `work` stops once its receiver reports disconnection.
    pub(crate) fn spawn(name: &str, work: impl FnOnce(Receiver<()>) + Send + 'static) -> std::io::Result<Background> {
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(move || work(stopped))?;
        Ok(Background { stop: Some(stop), thread: Some(thread) })
    }
}

/// Stops the thread and waits for it to finish.
impl Drop for Background {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

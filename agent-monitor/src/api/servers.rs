//! The servers that take declarations, as `run` and the daemon start them:
//! the socket, and the OTLP receiver when one is asked for. Both feed the
//! processing stage through one channel and stop on one signal.

use tokio::{
    net::{TcpListener, UnixListener},
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::{ApiMessage, Kernel};
use crate::{otlp::Counts, time::WallClock};

pub struct Servers {
    socket: JoinHandle<()>,
    otlp: Option<JoinHandle<Counts>>,
}

impl Servers {
    /// Starts serving `socket`, and `otlp` if given, until `stop` turns
    /// true.
    pub fn spawn<K: Kernel>(
        socket: UnixListener,
        otlp: Option<TcpListener>,
        kernel: K,
        to_stage: mpsc::Sender<ApiMessage>,
        clock: WallClock,
        stop: &watch::Sender<bool>,
    ) -> Servers {
        let otlp = otlp.map(|listener| {
            tokio::spawn(crate::otlp::serve(
                listener,
                kernel.clone(),
                to_stage.clone(),
                clock,
                stop.subscribe(),
            ))
        });
        let socket = tokio::spawn(super::serve(
            socket,
            kernel,
            to_stage,
            clock,
            stop.subscribe(),
        ));
        Servers { socket, otlp }
    }

    /// Waits for both to finish, once `stop` has turned true; what the
    /// OTLP receiver took, when there was one.
    pub async fn stopped(self) -> Option<Counts> {
        let _ = self.socket.await;
        self.otlp?.await.ok()
    }
}

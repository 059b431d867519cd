//! In-memory connections to the fake, as tonic's `mock` example makes them: a
//! `tokio::io::duplex` pipe per connection, handed to the server through a channel. Over
//! them no byte waits in a kernel, so a paused clock cannot jump while a reply is on its way:
//! tokio advances it only when every task is idle.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::state::lock;
use crate::transport::Dialer;

/// How much a pipe buffers each way.
const PIPE_BYTES: usize = 256 * 1024;

/// Where new in-memory connections go: the serving fake's, or none while it is stopped.
#[derive(Clone, Default)]
pub(super) struct MemoryDoor {
    open: Arc<Mutex<Option<mpsc::UnboundedSender<Accepted>>>>,
    /// Each connection's made-up client port, so that requests name their connection.
    next_port: Arc<AtomicU16>,
}

impl MemoryDoor {
    /// Opens the door for a new serving: the connections it takes come out of the receiver.
    pub(super) fn open(&self) -> mpsc::UnboundedReceiver<Accepted> {
        let (sender, receiver) = mpsc::unbounded_channel();
        *lock(&self.open) = Some(sender);
        receiver
    }

    /// Closes it: dialling fails as a refused connection does.
    pub(super) fn close(&self) {
        *lock(&self.open) = None;
    }

    /// A dialer that opens a pipe through the door.
    pub(super) fn dialer(&self) -> Dialer {
        let door = self.clone();
        Dialer::new(tower::service_fn(move |_uri: http::Uri| {
            let door = door.clone();
            async move {
                let (client, server) = tokio::io::duplex(PIPE_BYTES);
                let port = door
                    .next_port
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_add(1);
                let peer = SocketAddr::from(([127, 0, 0, 1], port));
                let sender = lock(&door.open).clone();
                let accepted = Accepted::Memory { pipe: server, peer };
                match sender.map(|sender| sender.send(accepted)) {
                    Some(Ok(())) => Ok(client),
                    _ => Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "the fake is not serving",
                    )),
                }
            }
        }))
    }
}

/// A connection the fake serves: TCP, or an in-memory pipe.
pub(super) enum Accepted {
    Tcp(TcpStream),
    Memory {
        pipe: DuplexStream,
        peer: SocketAddr,
    },
}

impl Connected for Accepted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            Accepted::Tcp(stream) => stream.connect_info(),
            Accepted::Memory { peer, .. } => TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(*peer),
            },
        }
    }
}

impl AsyncRead for Accepted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Accepted::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Accepted::Memory { pipe, .. } => Pin::new(pipe).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Accepted::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Accepted::Memory { pipe, .. } => Pin::new(pipe).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Accepted::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Accepted::Memory { pipe, .. } => Pin::new(pipe).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Accepted::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Accepted::Memory { pipe, .. } => Pin::new(pipe).poll_shutdown(cx),
        }
    }
}

//! [`Dialer`]: how the pool opens a connection when it is not tonic's own TCP dialling: any
//! tower service from the endpoint's URI to a byte stream (an in-memory pipe to a fake, a
//! Unix socket, a tunnel). TLS, when the endpoint is `https://`, runs inside that stream,
//! then HTTP/2, as over TCP.

use std::future::Future;
use std::pin::Pin;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt as _};

/// A byte stream a [`Dialer`] opened: anything that reads and writes bytes.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

type Connection = TokioIo<Box<dyn ByteStream>>;

/// Opens connections to the endpoint with a tower service of yours (see
/// [`Connector::dialer`](super::Connector::dialer)). Cheap to clone.
#[derive(Clone)]
pub struct Dialer(BoxCloneSyncService<http::Uri, Connection, tower::BoxError>);

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer { .. }")
    }
}

impl Dialer {
    /// A dialer from a service that opens a byte stream to a URI.
    pub fn new<D>(dial: D) -> Self
    where
        D: Service<http::Uri> + Clone + Send + Sync + 'static,
        D::Response: ByteStream,
        D::Error: Into<tower::BoxError>,
        D::Future: Send + 'static,
    {
        let boxed = dial
            .map_response(|stream| TokioIo::new(Box::new(stream) as Box<dyn ByteStream>))
            .map_err(Into::into);
        Dialer(BoxCloneSyncService::new(boxed))
    }
}

impl Service<http::Uri> for Dialer {
    type Response = Connection;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connection, tower::BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        self.0.call(uri)
    }
}

/// A connection a [`Dialer`] opened, as hyper-util's pooled client takes one (the REST
/// wire's): the byte stream, saying nothing special about itself.
#[cfg(feature = "rest")]
pub(crate) struct Dialed(Connection);

#[cfg(feature = "rest")]
impl hyper_util::client::legacy::connect::Connection for Dialed {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

#[cfg(feature = "rest")]
impl hyper::rt::Read for Dialed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

#[cfg(feature = "rest")]
impl hyper::rt::Write for Dialed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A [`Dialer`] as the connector of hyper-util's pooled client.
#[cfg(feature = "rest")]
#[derive(Clone)]
pub(crate) struct DialerConnector(pub(crate) Dialer);

#[cfg(feature = "rest")]
impl Service<http::Uri> for DialerConnector {
    type Response = Dialed;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Dialed, tower::BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dialing = self.0.call(uri);
        Box::pin(async move { dialing.await.map(Dialed) })
    }
}

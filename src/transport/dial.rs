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

/// TCP to the URI's host and port (20 s to connect, no Nagle), as tonic dials.
pub(crate) fn tcp() -> Dialer {
    Dialer::new(tower::service_fn(|uri: http::Uri| async move {
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let secure = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let connecting = tokio::net::TcpStream::connect((host.as_str(), port));
        let stream = tokio::time::timeout(std::time::Duration::from_secs(20), connecting)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    }))
}

impl Dialer {
    /// The same dialer, its connections failing if the server sends nothing at all within
    /// `within` of connecting. Every HTTP/2 server sends its SETTINGS at once (and an HTTP/1
    /// server answers the preface): a server that sends nothing is silent, and a call on
    /// its connection fails as a GetOperation would after its per-call timeout, instead of
    /// a WaitOperation waiting out its whole minute.
    pub(crate) fn silent_after(self, within: std::time::Duration) -> Self {
        let inner = self;
        Dialer::new(
            tower::ServiceBuilder::new()
                .map_response(move |connection: Connection| FirstByte {
                    inner: connection.into_inner(),
                    deadline: Some(Box::pin(tokio::time::sleep(within))),
                    within,
                })
                .service(inner),
        )
    }
}

/// The server sent nothing within the per-call timeout of connecting.
#[derive(Debug)]
pub(crate) struct SilentServer {
    pub(crate) within: std::time::Duration,
}

/// How [`SilentServer`] reads, before and after its time: the fault classification finds
/// it by this text where h2 kept no more of it.
pub(crate) const SILENT_SERVER: &str = "the server sent nothing within ";
pub(crate) const OF_CONNECTING: &str = " of connecting";

impl std::fmt::Display for SilentServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SILENT_SERVER}{:?}{OF_CONNECTING}", self.within)
    }
}

impl std::error::Error for SilentServer {}

/// A connection whose server must send its first byte by a deadline.
struct FirstByte {
    inner: Box<dyn ByteStream>,
    /// Until the first byte.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    within: std::time::Duration,
}

impl AsyncRead for FirstByte {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        match (&read, self.deadline.as_mut()) {
            (_, None) => read,
            (std::task::Poll::Ready(Ok(())), Some(_)) if buf.filled().len() > before => {
                self.deadline = None;
                read
            }
            (std::task::Poll::Pending, Some(deadline)) => match deadline.as_mut().poll(cx) {
                std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    SilentServer {
                        within: self.within,
                    },
                ))),
                std::task::Poll::Pending => read,
            },
            _ => read,
        }
    }
}

impl AsyncWrite for FirstByte {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

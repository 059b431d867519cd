//! Fault classification: what a failure below gRPC (connecting, TLS, HTTP/2) means for a
//! call, decided once, the same whatever cargo features tonic was built with.
//!
//! tonic types transport errors differently depending on its `server` feature (which any
//! service that also runs a tonic server turns on): with it, a GOAWAY or RST_STREAM becomes
//! `INTERNAL: h2 protocol error`, without it `UNKNOWN`. The [`Guard`](super::guard) layer
//! therefore classifies every transport error itself, from the error's source chain, before
//! tonic sees it, and hands tonic a finished status whose source is a [`Fault`].

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use tonic::Code;

use crate::error::FaultKind;

/// A classified transport failure, carried as the source of the `UNAVAILABLE` status the
/// call fails with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    kind: FaultKind,
    peer: Arc<str>,
    message: String,
}

impl Fault {
    /// A fault of `kind` talking to `peer`, described by `message`.
    pub(crate) fn new(kind: FaultKind, peer: &Arc<str>, message: String) -> Self {
        Fault {
            kind,
            peer: peer.clone(),
            message,
        }
    }

    /// What it means for the call.
    pub fn kind(&self) -> FaultKind {
        self.kind
    }

    /// The host and port the call went to.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The fault in words (for a certificate, what is wrong with it).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The fault a tonic status carries as its source, if it carries one.
    pub fn of(status: &tonic::Status) -> Option<&Fault> {
        carried(status)
    }

    /// The status a call fails with (`UNAVAILABLE`), with this fault as its source.
    pub(crate) fn into_status(self) -> tonic::Status {
        let code = match self.kind {
            FaultKind::Silent => Code::DeadlineExceeded,
            _ => Code::Unavailable,
        };
        let mut status = tonic::Status::new(code, self.to_string());
        status.set_source(Arc::new(self));
        status
    }

    /// Classifies a transport error from its source chain. A tonic status already in the
    /// chain (from a layer below) is kept as it is: `None`.
    pub(crate) fn classify(error: &(dyn StdError + 'static), peer: &Arc<str>) -> Option<Fault> {
        let mut source = Some(error);
        let mut text = error.to_string();
        while let Some(error) = source {
            if error.downcast_ref::<tonic::Status>().is_some() {
                return None;
            }
            if let Some(fault) = error.downcast_ref::<Fault>() {
                return Some(fault.clone());
            }
            if let Some(kind) = classify_one(error, peer) {
                return Some(kind);
            }
            source = error.source();
            if let Some(next) = source {
                text = format!("{text}: {next}");
            }
        }
        Some(Fault::new(
            FaultKind::Interrupted,
            peer,
            format!("transport error talking to {peer}: {text}"),
        ))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::Certificate => write!(
                f,
                "the TLS certificate of {} was not accepted: {}",
                self.peer, self.message
            ),
            _ => f.write_str(&self.message),
        }
    }
}

impl StdError for Fault {}

/// The `T` in a status's source chain: how the layers signal to the client's call loop
/// (a [`Fault`], a rejected token, a refused long call, a token source's error).
pub(crate) fn carried<T: StdError + 'static>(status: &tonic::Status) -> Option<&T> {
    let mut source: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(error) = source {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        source = error.source();
    }
    None
}

/// One link of a source chain, if it says enough.
fn classify_one(error: &(dyn StdError + 'static), peer: &Arc<str>) -> Option<Fault> {
    let fault = |kind, message: String| Some(Fault::new(kind, peer, message));
    if let Some(proxy) = error.downcast_ref::<super::proxy::ProxyFailure>() {
        // Named by the proxy: the endpoint was never reached.
        let proxy_peer: Arc<str> = Arc::from(proxy.proxy());
        return Some(Fault::new(proxy.kind(), &proxy_peer, proxy.to_string()));
    }
    if error.downcast_ref::<tonic::TimeoutExpired>().is_some() {
        // tonic's channel enforcing the call's `grpc-timeout`.
        return fault(
            FaultKind::Silent,
            format!("no answer from {peer} within the call's deadline"),
        );
    }
    #[cfg(feature = "tls")]
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return certificate_fault(tls, peer);
    }
    if let Some(silent) = error.downcast_ref::<super::dial::SilentServer>() {
        return fault(
            FaultKind::Silent,
            format!(
                "no answer from {peer} within the per-call timeout of {:?}",
                silent.within
            ),
        );
    }
    if let Some(io) = error.downcast_ref::<io::Error>() {
        // An io::Error hides the error it wraps from `source()`: look inside.
        #[cfg(feature = "tls")]
        if let Some(tls) = io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return certificate_fault(tls, peer);
        }
        if let Some(inner) = io.get_ref()
            && let Some(found) = classify_one(inner, peer)
        {
            return Some(found);
        }
        return match io.kind() {
            io::ErrorKind::ConnectionRefused => {
                fault(FaultKind::Unsent, format!("connection refused by {peer}"))
            }
            // h2 keeps a connection's io error as its kind and text only (its
            // `proto::Error::Io`), so the silent server is told by the text it left.
            io::ErrorKind::TimedOut if io.to_string().contains(super::dial::SILENT_SERVER) => {
                let within = io
                    .to_string()
                    .rsplit_once(super::dial::SILENT_SERVER)
                    .map(|(_, after)| {
                        after
                            .trim_end_matches(super::dial::OF_CONNECTING)
                            .to_owned()
                    })
                    .unwrap_or_default();
                fault(
                    FaultKind::Silent,
                    format!("no answer from {peer} within the per-call timeout of {within}"),
                )
            }
            io::ErrorKind::TimedOut => fault(
                FaultKind::Unsent,
                format!("no answer from {peer} while connecting"),
            ),
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => fault(
                FaultKind::Interrupted,
                format!("connection to {peer} was cut ({io})"),
            ),
            io::ErrorKind::NotFound | io::ErrorKind::AddrNotAvailable => {
                fault(FaultKind::Unsent, format!("cannot reach {peer}: {io}"))
            }
            _ => None,
        };
    }
    if let Some(h2) = error.downcast_ref::<h2::Error>() {
        return classify_h2(h2, peer);
    }
    if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
        if hyper.is_canceled() {
            // hyper hands back requests it never wrote when the connection went away.
            return fault(
                FaultKind::Unsent,
                format!("the connection to {peer} closed before the call was sent"),
            );
        }
        if hyper.is_timeout() {
            return fault(
                FaultKind::Interrupted,
                format!("no answer from {peer} to HTTP/2 keepalive pings"),
            );
        }
        if hyper.source().is_none() && (hyper.is_closed() || hyper.is_incomplete_message()) {
            return fault(
                FaultKind::Interrupted,
                format!("the connection to {peer} closed during the call"),
            );
        }
    }
    None
}

fn classify_h2(h2: &h2::Error, peer: &Arc<str>) -> Option<Fault> {
    let reason = h2.reason().map(|r| format!("{r:?}")).unwrap_or_default();
    let (kind, message) = if h2.is_go_away() && h2.is_remote() {
        // Streams above the GOAWAY's last stream id are failed with it: never processed.
        (
            FaultKind::Unsent,
            format!("{peer} closed the connection (GOAWAY {reason}) before handling the call"),
        )
    } else if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
        (FaultKind::Unsent, format!("{peer} refused the stream"))
    } else if h2.is_reset() || (h2.reason().is_some() && !h2.is_go_away()) {
        (
            FaultKind::Interrupted,
            format!("{peer} reset the stream (RST_STREAM {reason})"),
        )
    } else if h2.is_io() {
        (
            FaultKind::Interrupted,
            format!("the connection to {peer} broke: {h2}"),
        )
    } else {
        (
            FaultKind::Interrupted,
            format!("HTTP/2 error talking to {peer}: {h2}"),
        )
    };
    Some(Fault::new(kind, peer, message))
}

#[cfg(feature = "tls")]
fn certificate_fault(tls: &rustls::Error, peer: &Arc<str>) -> Option<Fault> {
    use rustls::{CertificateError, Error as Tls};
    let reason = match tls {
        Tls::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "it is signed by a CA this client does not trust (add it with --ca-file or SSL_CERT_FILE)".to_owned()
        }
        Tls::InvalidCertificate(CertificateError::Expired) => "it has expired".to_owned(),
        Tls::InvalidCertificate(CertificateError::NotValidYet) => "it is not valid yet".to_owned(),
        Tls::InvalidCertificate(CertificateError::NotValidForName)
        | Tls::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "it was issued for another host name".to_owned()
        }
        Tls::InvalidCertificate(CertificateError::Revoked) => "it has been revoked".to_owned(),
        Tls::InvalidCertificate(other) => format!("it is invalid ({other:?})"),
        // A server that answers a TLS handshake with something that is not TLS: most likely
        // plaintext HTTP/2, an emulator.
        Tls::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            return Some(Fault::new(
                FaultKind::Interrupted,
                peer,
                format!(
                    "TLS error talking to {peer}: it does not speak TLS (an emulator? use http://{peer})"
                ),
            ));
        }
        // Any other TLS failure (a cut stream, a protocol mismatch) is not permanent.
        other => {
            return Some(Fault::new(
                FaultKind::Interrupted,
                peer,
                format!("TLS error talking to {peer}: {other}"),
            ));
        }
    };
    Some(Fault::new(FaultKind::Certificate, peer, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Arc<str> {
        Arc::from("127.0.0.1:50051")
    }

    #[derive(Debug)]
    struct Wrapped(Box<dyn StdError + Send + Sync>);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("tcp connect error")
        }
    }
    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn each_transport_error_is_classified_with_the_peer_named() {
        let cases: Vec<(Box<dyn StdError + Send + Sync>, FaultKind, &str)> = vec![
            (
                Box::new(Wrapped(Box::new(io::Error::from(
                    io::ErrorKind::ConnectionRefused,
                )))),
                FaultKind::Unsent,
                "connection refused by 127.0.0.1:50051",
            ),
            (
                Box::new(io::Error::from(io::ErrorKind::ConnectionReset)),
                FaultKind::Interrupted,
                "connection to 127.0.0.1:50051 was cut",
            ),
            (
                Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM)),
                FaultKind::Unsent,
                "refused the stream",
            ),
            (
                Box::new(h2::Error::from(h2::Reason::INTERNAL_ERROR)),
                FaultKind::Interrupted,
                "reset the stream",
            ),
            (
                Box::new(io::Error::other("mystery")),
                FaultKind::Interrupted,
                "transport error talking to 127.0.0.1:50051: mystery",
            ),
        ];
        for (error, kind, words) in cases {
            let fault = Fault::classify(&*error, &peer()).unwrap();
            assert_eq!(fault.kind(), kind, "{error}");
            assert!(fault.message().contains(words), "{}", fault.message());
        }
    }

    #[test]
    fn a_status_already_in_the_chain_is_kept() {
        let status = tonic::Status::not_found("gone");
        assert!(Fault::classify(&status, &peer()).is_none());
    }

    #[test]
    fn the_fault_travels_as_the_source_of_an_unavailable_status() {
        let fault = Fault::new(FaultKind::Unsent, &peer(), "refused".into());
        let status = fault.clone().into_status();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(Fault::of(&status), Some(&fault));
        // tonic keeps a status it is handed as the service's error, source included.
        let through_tonic = tonic::Status::from_error(Box::new(status));
        assert_eq!(Fault::of(&through_tonic), Some(&fault));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn certificate_errors_are_permanent_and_say_what_is_wrong() {
        let error = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let fault = Fault::classify(&error, &Arc::from("localhost:8443")).unwrap();
        assert_eq!(fault.kind(), FaultKind::Certificate);
        assert!(fault.to_string().contains("localhost:8443"), "{fault}");
        assert!(fault.message().contains("CA"), "{}", fault.message());
    }
}

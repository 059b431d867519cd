//! The layer in front of the fake's services that answers calls with their due
//! [`HttpFault`], as a proxy or a broken server would.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tonic::body::Body;
use tower::{Layer, Service};

use super::FakeMethod;
use super::faults::HttpFault;
use super::state::{Shared, lock};

/// Puts the fake's HTTP faults in front of its services.
#[derive(Clone)]
pub(super) struct FaultLayer(pub(super) Arc<Shared>);

impl<S> Layer<S> for FaultLayer {
    type Service = FaultService<S>;

    fn layer(&self, inner: S) -> FaultService<S> {
        FaultService {
            inner,
            shared: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct FaultService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for FaultService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if !self.shared.http_faults_armed.load(Ordering::Relaxed) {
            return Box::pin(self.inner.call(request));
        }
        let method = FakeMethod::ALL
            .into_iter()
            .find(|m| m.path() == request.uri().path());
        let fault = method.and_then(|method| self.take_fault(method));
        let Some(fault) = fault else {
            return Box::pin(self.inner.call(request));
        };
        let shared = self.shared.clone();
        Box::pin(async move {
            if let Some(response) = fault.response() {
                return Ok(response);
            }
            // Silence: hold the call until the fake stops.
            loop {
                let changed = shared.changed.notified();
                if shared.stopping.load(Ordering::SeqCst) {
                    return Ok(tonic::Status::unavailable("the fake server stopped").into_http());
                }
                changed.await;
            }
        })
    }
}

impl<S> FaultService<S> {
    /// The fault due for the next call of `method`, counted as a call and a fault.
    fn take_fault(&self, method: FakeMethod) -> Option<HttpFault> {
        let fault = {
            let mut faults = lock(&self.shared.http_faults);
            match faults.get_mut(&method) {
                Some((left, fault)) if *left > 0 => {
                    *left -= 1;
                    Some(fault.clone())
                }
                _ => None,
            }
        }?;
        self.shared.calls[method.index()].fetch_add(1, Ordering::SeqCst);
        self.shared.faults_injected.fetch_add(1, Ordering::SeqCst);
        Some(fault)
    }
}

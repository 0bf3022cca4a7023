//! Refusing a request whose body is still arriving (401 before an upload is read, 413 at the
//! limit) without losing the answer.
//!
//! Closing a connection while the client still sends makes the kernel reset it, and a reset can
//! discard our answer before the client reads it: `bundle upload` with a wrong token would say
//! "connection reset" instead of "wrong token". So the rest of the body is read and discarded for
//! a bounded time after the answer (a "lingering close", as web servers do), and the answer says
//! `Connection: close` so the client does not send another request into the closing connection.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::Instant;

/// How long the rest of a refused body is read, at most.
const LINGER_FOR: Duration = Duration::from_secs(30);
/// How long to wait for the next piece of it before giving up.
const LINGER_IDLE: Duration = Duration::from_secs(5);

/// Middleware: see the module documentation.
pub async fn close_after_refused_body(req: Request, next: Next) -> Response {
    let has_body = req.headers().contains_key(TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0");
    if !has_body {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let body = SharedBody(Arc::new(Mutex::new(body)));
    let mut response = next
        .run(Request::from_parts(parts, Body::new(body.clone())))
        .await;
    let refused = response.status().is_client_error() || response.status().is_server_error();
    if refused {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        tokio::spawn(drain(body));
    }
    response
}

/// Reads and discards what is left of a body, for at most [`LINGER_FOR`].
async fn drain(body: SharedBody) {
    let deadline = Instant::now() + LINGER_FOR;
    let mut body = Body::new(body);
    loop {
        let wait = (Instant::now() + LINGER_IDLE).min(deadline);
        match tokio::time::timeout_at(wait, body.frame()).await {
            Ok(Some(Ok(_))) => continue,
            // The end, an error or a timeout: dropping the body lets the connection close.
            _ => return,
        }
    }
}

/// A request body the handler reads while the middleware keeps hold of it, to drain the rest.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<Body>>);

impl SharedBody {
    fn lock(&self) -> std::sync::MutexGuard<'_, Body> {
        // A panic while reading leaves a body that can still be read or dropped.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut *self.lock()).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.lock().is_end_stream()
    }

    // Kept: the body limit refuses an announced oversize length before reading anything.
    fn size_hint(&self) -> SizeHint {
        self.lock().size_hint()
    }
}

//! One simulated client's connection: a keep-alive HTTP/1.1 connection made
//! with hyper's low-level client, one request at a time, like an
//! orchestrator worker calling `wcp`. Shared by the benches that drive a
//! server over loopback (`#[path]`-included as their `client` module).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request that gets no answer within this long counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Body = BoxBody<Bytes, std::convert::Infallible>;

/// A keep-alive connection to one server.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Body>,
}

impl Connection {
    /// Connects with `TCP_NODELAY`, as a latency-minded client would.
    pub async fn open(address: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to {address}"))?;
        stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake failed")?;
        // The connection's I/O runs on its own task until either side closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { sender })
    }

    /// Sends `POST path` with a JSON body and returns the status and body.
    pub async fn post(&mut self, path: &str, body: Bytes) -> anyhow::Result<(StatusCode, Bytes)> {
        self.send(Method::POST, path, Full::new(body).boxed()).await
    }

    /// Sends `POST path` with a JSON body and returns the answer's body; a
    /// transport error or a status other than `expect` is a [`Failure`].
    pub async fn post_expecting(
        &mut self,
        path: &str,
        body: Bytes,
        expect: StatusCode,
    ) -> Result<Bytes, Failure> {
        let (status, answer) = self.post(path, body).await.map_err(Failure::transport)?;
        if status != expect {
            return Err(Failure {
                message: format!(
                    "{path}: {status}, expected {expect}: {}",
                    String::from_utf8_lossy(&answer)
                ),
                transport: false,
            });
        }
        Ok(answer)
    }

    /// Sends `GET path` and returns the status and body.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        self.send(Method::GET, path, Empty::new().boxed()).await
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "wcp")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .context("cannot build the request")?;
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(anyhow!("{path}: {error}")),
            Err(_) => Err(anyhow!("{path}: no answer within {REQUEST_TIMEOUT:?}")),
        }
    }
}

/// Why an exchange failed.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, naming the request.
    pub message: String,
    /// The connection is broken and must be reopened.
    pub transport: bool,
}

impl Failure {
    /// The connection failed: it must be reopened.
    pub fn transport(error: anyhow::Error) -> Failure {
        Failure {
            message: format!("{error:#}"),
            transport: true,
        }
    }
}

/// Reads an answer's JSON body; `what` names the request in the failure.
pub fn parse<'a, T: serde::Deserialize<'a>>(what: &str, body: &'a [u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|error| Failure {
        message: format!("{what}: unreadable answer: {error}"),
        transport: false,
    })
}

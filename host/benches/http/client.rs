//! One simulated client's connection: a keep-alive HTTP/1.1 connection made
//! with hyper's low-level client, one request at a time, like an
//! orchestrator worker calling `wcp`.

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

//! Plain HTTP/1.1 on a socket, for the tests that drive a real `wcp serve`
//! byte for byte: one request on its own connection, and reading what came
//! back.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The status and body of a whole response as text.
pub fn parse_response(text: &str) -> (u16, String) {
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Sends one request with a JSON `body` (`""`: none) on a connection of
/// its own, and returns (status, body) once the server closes it.
pub fn send(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    try_send(address, method, path, body).unwrap()
}

/// As [`send`], for a server that may be gone: a refused connection, or one
/// closed before a whole response head, is an error.
pub fn try_send(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: wcp\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    if !text.starts_with("HTTP/1.1 ") || !text.contains("\r\n\r\n") {
        return Err(std::io::Error::other(format!(
            "no whole response: {text:?}"
        )));
    }
    Ok(parse_response(&text))
}

/// Keeps every line `child` (a `wcp serve` with piped stderr) logs, and
/// returns the address of its "listening on" line, once logged within
/// `deadline`, with the log so far and to come.
pub fn listening(child: &mut Child, deadline: Duration) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (found, address) = mpsc::channel();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let kept = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some((_, rest)) = line.split_once("listening on http://") {
                let _ = found.send(rest.trim().trim_end_matches('/').to_owned());
            }
            kept.lock().unwrap().push(line);
        }
    });
    let address = address
        .recv_timeout(deadline)
        .unwrap_or_else(|_| panic!("no listening line: {:?}", log.lock().unwrap()));
    (address.parse().unwrap(), log)
}

//! Connections the simulator can drop without an answer, for the "dropped connection" fault.
//!
//! axum has no way for a handler to close its connection. So the simulator accepts connections
//! through [`DroppableListener`], which wraps every socket in a [`DroppableStream`] sharing a
//! flag with the [`ConnectionControl`] that axum hands each request as its `ConnectInfo`. A
//! handler that drops its connection raises the flag before it returns; from then on the stream
//! refuses every write and reads as closed, so hyper fails to write the answer and closes the
//! socket: the client sees the connection end with no byte of an answer. No panic, no task
//! abort, and the other connections are untouched.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections can be dropped by their handlers.
#[derive(Debug)]
pub struct DroppableListener(TcpListener);

impl DroppableListener {
    pub fn new(listener: TcpListener) -> Self {
        DroppableListener(listener)
    }
}

impl Listener for DroppableListener {
    type Io = DroppableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    // Small answers on kept-alive connections must not wait for Nagle.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                    let stream = DroppableStream {
                        inner: stream,
                        dropped: Arc::new(AtomicBool::new(false)),
                    };
                    return (stream, addr);
                }
                // As axum's own listener: a failed handshake concerns one client only; anything
                // else (out of file descriptors) is worth a pause before trying again.
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    tracing::error!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A TCP stream that goes dead once its [`ConnectionControl`] drops it.
#[derive(Debug)]
pub struct DroppableStream {
    inner: TcpStream,
    dropped: Arc<AtomicBool>,
}

impl DroppableStream {
    fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

fn dropped_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by the simulator",
    )
}

impl AsyncRead for DroppableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.is_dropped() {
            // End of stream: hyper reads no further request from this connection.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DroppableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.is_dropped() {
            return Poll::Ready(Err(dropped_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_dropped() {
            return Poll::Ready(Err(dropped_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_dropped() {
            return Poll::Ready(Err(dropped_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request's handle on its connection (axum's `ConnectInfo`).
#[derive(Debug, Clone)]
pub struct ConnectionControl {
    dropped: Arc<AtomicBool>,
}

impl ConnectionControl {
    /// Closes the connection once the handler returns, without sending its answer.
    pub fn drop_connection(&self) {
        self.dropped.store(true, Ordering::Release);
    }
}

impl Connected<IncomingStream<'_, DroppableListener>> for ConnectionControl {
    fn connect_info(stream: IncomingStream<'_, DroppableListener>) -> Self {
        ConnectionControl {
            dropped: stream.io().dropped.clone(),
        }
    }
}

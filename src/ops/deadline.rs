//! Deadlines on a connection's silences: a request's head must arrive within the header
//! timeout once its first byte has, and a keep-alive connection may wait for its next request
//! for the idle timeout. Hyper has a header timer only, which also runs while a connection is
//! idle, so both are kept here, on the bytes: a head ends at its first blank line.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// What the connection is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// The first byte of the next request (the idle deadline runs).
    NextRequest,
    /// The rest of a request head; `matched` bytes of `\r\n\r\n` seen (the header deadline runs).
    Head { matched: usize },
    /// A head has arrived: the body and the answer are the request timeout's business.
    Answer,
    /// HTTP/2: hyper's own keep-alive pings watch the connection.
    Http2,
}

const HEAD_END: &[u8] = b"\r\n\r\n";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

pub struct Deadlines<T> {
    inner: T,
    header_timeout: Duration,
    idle_timeout: Duration,
    waiting: Waiting,
    timer: Pin<Box<Sleep>>,
    fresh: bool,
}

impl<T> Deadlines<T> {
    pub fn new(inner: T, header_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            inner,
            header_timeout,
            idle_timeout,
            waiting: Waiting::NextRequest,
            // A new connection gets the header timeout for its first byte, like a slow head.
            timer: Box::pin(tokio::time::sleep(header_timeout)),
            fresh: true,
        }
    }

    /// Sets the deadline and registers this task to be woken at it: hyper may not read again
    /// before the socket turns readable, so the timer must wake it by itself.
    fn arm(&mut self, after: Duration, cx: &mut Context<'_>) {
        self.timer.as_mut().reset(Instant::now() + after);
        let _ = self.timer.as_mut().poll(cx);
    }

    /// Follows the request heads through the bytes just read.
    fn saw(&mut self, bytes: &[u8], cx: &mut Context<'_>) {
        if bytes.is_empty() {
            return;
        }
        if self.fresh {
            self.fresh = false;
            if bytes.starts_with(H2_PREFACE) {
                self.waiting = Waiting::Http2;
                return;
            }
        }
        let mut rest = bytes;
        if self.waiting == Waiting::NextRequest {
            self.waiting = Waiting::Head { matched: 0 };
            let header = self.header_timeout;
            self.arm(header, cx);
        }
        if let Waiting::Head { mut matched } = self.waiting {
            while let Some((&byte, tail)) = rest.split_first() {
                rest = tail;
                matched = if byte == HEAD_END[matched] {
                    matched + 1
                } else if byte == HEAD_END[0] {
                    1
                } else {
                    0
                };
                if matched == HEAD_END.len() {
                    self.waiting = Waiting::Answer;
                    return;
                }
            }
            self.waiting = Waiting::Head { matched };
        }
    }

    /// An answer is going out: the request was heard, and from the last byte written the
    /// connection waits for its next request.
    fn wrote(&mut self, n: usize, cx: &mut Context<'_>) {
        if n > 0 && self.waiting != Waiting::Http2 {
            self.waiting = Waiting::NextRequest;
            self.fresh = false;
            let idle = self.idle_timeout;
            self.arm(idle, cx);
        }
    }

    fn deadline_running(&self) -> bool {
        matches!(self.waiting, Waiting::NextRequest | Waiting::Head { .. })
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadlines<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled()[before..].to_vec();
                self.saw(&read, cx);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                if self.deadline_running() && self.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client was silent too long",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadlines<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = written {
            self.wrote(n, cx);
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.wrote(n, cx);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(chunks: &[&[u8]]) -> Waiting {
        let mut io = Deadlines::new(
            tokio::io::empty(),
            Duration::from_secs(10),
            Duration::from_secs(60),
        );
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for chunk in chunks {
            io.saw(chunk, &mut cx);
        }
        io.waiting
    }

    #[tokio::test]
    async fn a_head_ends_at_its_first_blank_line_across_reads() {
        assert_eq!(
            fed(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
            Waiting::Answer
        );
        assert_eq!(
            fed(&[b"GET / HTTP/1.1\r\nHost: x\r", b"\n\r", b"\n"]),
            Waiting::Answer
        );
        assert_eq!(
            fed(&[b"GET / HTTP/1.1\r\nHost: x\r\n"]),
            Waiting::Head { matched: 2 }
        );
        assert_eq!(
            fed(&[b"GET / HTTP/1.1\r\n\r\r\n"]),
            Waiting::Head { matched: 2 }
        );
        assert_eq!(fed(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]), Waiting::Http2);
    }
}

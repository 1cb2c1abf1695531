//! The server's reader of a kernel's protocol pipe (its fd 4).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use super::protocol::{DriverMsg, Incoming, MAX_LINE_BYTES};

/// Read protocol lines, forwarding parsed messages; ends with exactly one `Closed`.
pub(crate) async fn read_messages(rx: pipe::Receiver, tx: mpsc::Sender<Incoming>, pid: u32) {
    let mut reader = BufReader::with_capacity(64 * 1024, rx);
    let mut buf = Vec::new();
    let end = loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) => break None,
            Ok(_) if !buf.ends_with(b"\n") => {
                if buf.len() as u64 >= MAX_LINE_BYTES {
                    log::error!("kernel {pid}: protocol line longer than {MAX_LINE_BYTES} bytes");
                    break Some("protocol message too long".to_string());
                }
                // Partial line then EOF: the child died mid-write.
                break None;
            }
            Ok(_) => match serde_json::from_slice::<DriverMsg>(&buf) {
                Ok(msg) => {
                    if tx.send(Incoming::Msg(msg)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let preview: String = String::from_utf8_lossy(&buf).chars().take(200).collect();
                    log::error!("kernel {pid}: malformed protocol message ({e}): {preview}");
                    break Some(format!("malformed protocol message: {e}"));
                }
            },
            Err(e) => {
                log::error!("kernel {pid}: error reading protocol pipe: {e}");
                break Some(format!("protocol read error: {e}"));
            }
        }
    };
    let _ = tx.send(Incoming::Closed(end)).await;
}

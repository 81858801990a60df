//! The pipe between the kernel's front process (`huelab-kernel`, which faces Jupyter) and the
//! session process behind it (`huelab kernel --relay-stdin`, which runs the cells): Jupyter
//! messages as the raw ZeroMQ frames they travel in, signed and addressed as on the wire, each
//! tagged with its channel. The front forwards what clients send and what the session
//! answers without reading it (apart from the `kernel_info_request`s it answers while the
//! session starts), so the session checks every signature as before.
//!
//! One record: the channel (one byte), the number of frames (u32, little-endian), then each
//! frame's length (u32, little-endian) and bytes. The session's first record is `Ready`, with no
//! frames.
//!
//! Compiled into the library and into the front (see `serving.rs` on why it names no `crate::`
//! outside its tests, which the front does not build).
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Which socket a record came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Shell,
    Control,
    IoPub,
    /// From the session: it runs and reads requests (no frames).
    Ready,
}

impl Channel {
    fn tag(self) -> u8 {
        match self {
            Channel::Shell => 1,
            Channel::Control => 2,
            Channel::IoPub => 3,
            Channel::Ready => 4,
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        [Channel::Shell, Channel::Control, Channel::IoPub, Channel::Ready].into_iter().find(|c| c.tag() == tag)
    }
}

/// Bounds on what one record may claim, so that a damaged record is an error rather than an
/// allocation of whatever its length fields say. A Jupyter message has 6 frames plus its
/// routing and buffers; figures and tables are a few MB.
const MAX_FRAMES: u32 = 4096;
const MAX_RECORD_BYTES: u64 = 1 << 30;

/// Writes one record.
pub async fn write<W: AsyncWrite + Unpin>(out: &mut W, channel: Channel, frames: &[Bytes]) -> std::io::Result<()> {
    let body: usize = frames.iter().map(|f| 4 + f.len()).sum();
    let mut record = Vec::with_capacity(5 + body);
    record.push(channel.tag());
    record.extend_from_slice(&u32::try_from(frames.len()).map_err(|_| invalid("too many frames"))?.to_le_bytes());
    for frame in frames {
        record.extend_from_slice(&u32::try_from(frame.len()).map_err(|_| invalid("a frame over 4 GiB"))?.to_le_bytes());
        record.extend_from_slice(frame);
    }
    out.write_all(&record).await?;
    out.flush().await
}

/// Reads one record; `None` at the end of the pipe between records. A record cut short or
/// claiming more than the bounds is an error.
pub async fn read<R: AsyncRead + Unpin>(input: &mut R) -> std::io::Result<Option<(Channel, Vec<Bytes>)>> {
    let mut tag = [0u8; 1];
    if input.read(&mut tag).await? == 0 {
        return Ok(None);
    }
    let channel = Channel::from_tag(tag[0]).ok_or_else(|| invalid(&format!("unknown channel tag {}", tag[0])))?;
    let count = input.read_u32_le().await?;
    if count > MAX_FRAMES {
        return Err(invalid(&format!("a record of {count} frames (at most {MAX_FRAMES})")));
    }
    let mut frames = Vec::with_capacity(count as usize);
    let mut total = 0u64;
    for _ in 0..count {
        let len = input.read_u32_le().await?;
        total += u64::from(len);
        if total > MAX_RECORD_BYTES {
            return Err(invalid(&format!("a record of over {MAX_RECORD_BYTES} bytes")));
        }
        // Grown as bytes come, so a damaged length allocates no more than the pipe holds.
        let mut frame = Vec::new();
        (&mut *input).take(u64::from(len)).read_to_end(&mut frame).await?;
        if frame.len() != len as usize {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "kernel relay: a record cut short"));
        }
        frames.push(Bytes::from(frame));
    }
    Ok(Some((channel, frames)))
}

fn invalid(problem: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("kernel relay: {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    fn sample() -> Vec<(Channel, Vec<Bytes>)> {
        vec![
            (Channel::Ready, vec![]),
            (Channel::Shell, vec![Bytes::from_static(b"client-1"), Bytes::from_static(b"<IDS|MSG>"), Bytes::new(), Bytes::from_static(b"{}")]),
            (Channel::IoPub, vec![Bytes::from(vec![7u8; 70_000])]),
            (Channel::Control, vec![Bytes::new()]),
        ]
    }

    #[test]
    fn records_round_trip_in_order_and_the_end_is_none() {
        block_on(async {
            let mut pipe = Vec::new();
            for (channel, frames) in sample() {
                write(&mut pipe, channel, &frames).await.unwrap();
            }
            let mut input = pipe.as_slice();
            for expected in sample() {
                assert_eq!(read(&mut input).await.unwrap(), Some(expected));
            }
            assert_eq!(read(&mut input).await.unwrap(), None);
        });
    }

    /// Seeded mutations of real records (the fuzz module's byte mutations: cuts, bit flips,
    /// nasty integers over length fields, inserted, deleted and copied bytes): each read ends in
    /// records, the end, or an error; never a panic or an allocation past the bounds.
    #[test]
    fn mutated_records_are_read_or_refused_never_a_panic() {
        use rand::SeedableRng;
        let mut original = Vec::new();
        block_on(async {
            for (channel, frames) in sample() {
                write(&mut original, channel, &frames).await.unwrap();
            }
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(33);
        let mut refused = 0;
        for _ in 0..2000 {
            let mut bytes = original.clone();
            crate::fuzz::mutate_bytes(&mut bytes, &mut rng);
            block_on(async {
                let mut input = bytes.as_slice();
                loop {
                    match read(&mut input).await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => {
                            refused += 1;
                            break;
                        }
                    }
                }
            });
        }
        assert!(refused > 1000, "only {refused} of 2000 mutations were refused");
    }
}

//! Parallel gzip: one gzip member whose deflate stream is made of fixed-size blocks
//! compressed side by side on rayon's pool, as pigz does.
//!
//! The input is cut every [`BLOCK`] bytes. Each block is raw deflate at level 6, primed
//! with the previous block's last 32 KiB as a preset dictionary (so the ratio stays
//! close to one stream's), and ended with a sync flush, which leaves the stream on a
//! byte boundary so the blocks concatenate; the last block ends the stream. A block's
//! bytes depend only on its own input and the 32 KiB before it, and the block size is
//! a constant, so the output is the same on any number of threads.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver};

use crc32fast::Hasher;
use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;

/// Bytes of input per block: a constant, never derived from the core count, since the
/// cut points decide the output's bytes.
const BLOCK: usize = 128 * 1024;

/// Deflate's window: how much of the previous block primes the next.
const WINDOW: usize = 32 * 1024;

/// The deflate level, gzip's and pigz's default.
const LEVEL: u32 = 6;

/// What `GzBuilder` wrote before: deflate, no flags, mtime 0, no extra flags (level 6
/// is neither fast nor best), OS 255, so nothing varies per run or per machine.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// A block compressed: its deflate bytes and the CRC-32 of its input.
type Compressed = (Vec<u8>, Hasher);

/// A writer that gzips what it is given into `W`. Input is gathered into batches of
/// blocks; a full batch is compressed on rayon's pool while the next one fills, and
/// written before the one after is handed over, so at most two batches are held.
/// [`ParallelGzip::finish`] ends the stream and must be called, as dropping the writer
/// loses what it buffers.
pub(super) struct ParallelGzip<W: Write> {
    inner: W,
    /// The previous block's last [`WINDOW`] bytes (none before the first block),
    /// then the input not yet handed over.
    pending: Vec<u8>,
    /// Where the input not yet handed over starts in `pending`.
    start: usize,
    /// Blocks per batch: enough to keep every thread busy. The bytes do not depend on it.
    batch: usize,
    /// The batch being compressed, whose blocks come back here.
    in_flight: Option<Receiver<io::Result<Vec<Compressed>>>>,
    /// CRC-32 of the input written so far.
    crc: Hasher,
    /// Bytes of input handed over so far.
    size: u64,
}

impl<W: Write> ParallelGzip<W> {
    /// Writes the gzip header into `inner` and starts a stream.
    pub(super) fn new(mut inner: W) -> io::Result<ParallelGzip<W>> {
        inner.write_all(&HEADER)?;
        let batch = 2 * rayon::current_num_threads().max(2);
        Ok(ParallelGzip {
            inner,
            pending: Vec::with_capacity(WINDOW + batch * BLOCK),
            start: 0,
            batch,
            in_flight: None,
            crc: Hasher::new(),
            size: 0,
        })
    }

    /// Hands the full batch in `pending` over to be compressed, keeping its last
    /// [`WINDOW`] bytes to prime the next, once the batch before it is written.
    fn hand_over(&mut self) -> io::Result<()> {
        let mut next = Vec::with_capacity(WINDOW + self.batch * BLOCK);
        next.extend_from_slice(&self.pending[self.pending.len() - WINDOW..]);
        let batch = std::mem::replace(&mut self.pending, next);
        let start = std::mem::replace(&mut self.start, WINDOW);
        self.size += (batch.len() - start) as u64;
        self.write_in_flight()?;
        let (done, blocks) = mpsc::sync_channel(1);
        let job = move || {
            // The receiver is gone only when the writer failed and was dropped.
            let _ = done.send(compress_blocks(&batch, start, false));
        };
        // A worker of the pool that waited for a job queued behind it could wait
        // forever: there, the batch is compressed before going on.
        if rayon::current_thread_index().is_some() {
            job();
        } else {
            rayon::spawn(job);
        }
        self.in_flight = Some(blocks);
        Ok(())
    }

    /// Waits for the batch being compressed, if any, and writes its blocks in order.
    fn write_in_flight(&mut self) -> io::Result<()> {
        let Some(blocks) = self.in_flight.take() else {
            return Ok(());
        };
        let blocks = blocks
            .recv()
            .map_err(|_| io::Error::other("a gzip worker stopped"))??;
        self.write_blocks(blocks)
    }

    /// Writes compressed blocks in order, adding their CRC-32s to the stream's.
    fn write_blocks(&mut self, blocks: Vec<Compressed>) -> io::Result<()> {
        for (bytes, crc) in blocks {
            self.inner.write_all(&bytes)?;
            self.crc.combine(&crc);
        }
        Ok(())
    }

    /// Compresses what is left, ends the stream with its CRC-32 and length, and gives
    /// back the writer under it.
    pub(super) fn finish(mut self) -> io::Result<W> {
        self.write_in_flight()?;
        let blocks = compress_blocks(&self.pending, self.start, true)?;
        self.size += (self.pending.len() - self.start) as u64;
        self.write_blocks(blocks)?;
        self.inner.write_all(&self.crc.finalize().to_le_bytes())?;
        // ISIZE is the length modulo 2^32.
        self.inner.write_all(&(self.size as u32).to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.start + self.batch * BLOCK - self.pending.len();
        let n = buf.len().min(room);
        self.pending.extend_from_slice(&buf[..n]);
        if n == room {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Flushes the writer underneath only: cutting a block early would make the bytes
    /// depend on when a caller flushes. [`ParallelGzip::finish`] writes everything.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compresses the blocks of `buf` after `start` in parallel, each primed with the
/// [`WINDOW`] bytes before it: full blocks end with a sync flush and, when `last`, the
/// rest (even empty) ends the stream.
fn compress_blocks(buf: &[u8], start: usize, last: bool) -> io::Result<Vec<Compressed>> {
    let full = (buf.len() - start) / BLOCK;
    let blocks: Vec<(usize, usize, bool)> = (0..full)
        .map(|k| (start + k * BLOCK, start + (k + 1) * BLOCK, false))
        .chain(last.then_some((start + full * BLOCK, buf.len(), true)))
        .collect();
    blocks
        .par_iter()
        .map(|&(from, to, end)| {
            let dictionary = &buf[from.saturating_sub(WINDOW)..from];
            compress_block(dictionary, &buf[from..to], end)
        })
        .collect()
}

/// Raw deflate of one block primed with `dictionary`, ended with a sync flush, or
/// ending the stream when `last`; with the block's CRC-32.
fn compress_block(dictionary: &[u8], input: &[u8], last: bool) -> io::Result<Compressed> {
    let mut deflate = Compress::new_with_window_bits(Compression::new(LEVEL), false, 15);
    if !dictionary.is_empty() {
        deflate
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Room for incompressible input and the block's framing; grown if ever short.
    let mut out = Vec::with_capacity(input.len() + input.len() / 64 + 64);
    loop {
        let consumed = usize::try_from(deflate.total_in()).map_err(io::Error::other)?;
        let status = deflate
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = deflate.total_in() == input.len() as u64;
        // A sync flush is complete once it stops short of filling the output.
        let done = match status {
            Status::StreamEnd => true,
            Status::Ok | Status::BufError => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    let mut crc = Hasher::new();
    crc.update(input);
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    /// Mixed input: text-like runs that compress, then pseudo-random bytes that do not.
    fn mixed(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..len)
            .map(|i| {
                if (i / 50_000) % 2 == 0 {
                    b"the quick brown fox jumps over the lazy dog\n"[i % 44]
                } else {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                }
            })
            .collect()
    }

    /// Gzips `input`, handed over in `chunk`-sized writes.
    fn gzip(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut gz = ParallelGzip::new(Vec::new()).unwrap();
        for part in input.chunks(chunk.max(1)) {
            gz.write_all(part).unwrap();
        }
        gz.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut plain).unwrap();
        plain
    }

    #[test]
    fn round_trips_across_block_boundaries() {
        let sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 5_000_000];
        for size in sizes {
            let input = mixed(size);
            let bytes = gzip(&input, 70_000);
            assert_eq!(gunzip(&bytes), input, "{size} bytes");
            assert_eq!(bytes[..10], HEADER, "{size} bytes");
            let isize = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
            assert_eq!(isize as usize, size);
        }
    }

    #[test]
    fn the_bytes_do_not_depend_on_threads_or_write_sizes() {
        let input = mixed(3_000_000);
        let on = |threads: usize, chunk: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| gzip(&input, chunk))
        };
        let one = on(1, 1 << 20);
        assert_eq!(on(8, 1 << 20), one);
        // Outside a pool, batches are compressed in the background on the global one.
        assert_eq!(gzip(&input, 1 << 20), one);
        assert_eq!(on(2, 4096), one);
        assert_eq!(gunzip(&one), input);
    }

    #[test]
    fn the_dictionary_keeps_the_ratio_of_one_stream() {
        // Random bytes repeating every 20 KB: one stream stores them once, and so do
        // the blocks, since each sees the previous block's tail; without it each block
        // would store its first copy again.
        let unit: Vec<u8> = mixed(70_000).split_off(50_000);
        let input: Vec<u8> = unit.iter().cycle().take(20 * BLOCK).copied().collect();
        let parallel = gzip(&input, 1 << 20).len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), Compression::new(LEVEL));
        single.write_all(&input).unwrap();
        let single = single.finish().unwrap().len();
        assert!(
            parallel * 10 < single * 11,
            "parallel {parallel} bytes, one stream {single}"
        );
    }

    #[test]
    fn an_empty_stream_is_valid_gzip() {
        let bytes = gzip(&[], 1);
        assert_eq!(gunzip(&bytes), b"");
        // Header, one final empty block, CRC 0, length 0.
        assert!(bytes.len() <= 10 + 5 + 8, "{} bytes", bytes.len());
    }
}

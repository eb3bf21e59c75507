//! The kernel's event ring, with its data pages mapped once.
//!
//! The kernel lays a BPF ring's data pages out twice in a row, so that a
//! record which wraps past the end reads as one slice, and it fills in the
//! whole mapping at `mmap`. aya's `RingBuf` maps both copies, as libbpf
//! does: for a 16 MiB ring that is 32 MiB of resident memory (a quarter
//! of the monitor's peak when that was the default ring), spent so that a
//! few records a lap need not be copied. This reader maps the data once
//! and copies a record that wraps into a scratch buffer.
//!
//! The protocol is the kernel's (`kernel/bpf/ringbuf.c`), read as libbpf
//! reads it. The first page holds the consumer position, which only
//! userspace writes; the second the producer position; the data follows.
//! Positions only grow, and a position's offset in the data is the
//! position modulo the data's size, a power of two. Each record starts on
//! an 8-byte boundary with an 8-byte header whose first word is its length,
//! with a busy bit while the producer writes it and a discard bit when it
//! was given up. Records are read in the order they were reserved, so a
//! busy one ends the read even if later ones are committed.
//!
//! The kernel reads the consumer position at every reservation, so each
//! store to it takes the cache line from the producing CPU. The reader
//! stores it once per batch ([`EventRing::release`]) and whenever it runs
//! dry, not after every record as libbpf does. Running dry is when it
//! matters: the kernel wakes the reader for a record only if the consumer
//! position, as stored, has caught up with it.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use aya::maps::MapData;

use crate::kernel::mapping::{Mapping, page_size};

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER: usize = 8;

pub struct EventRing {
    /// Owns the map's file descriptor, which the reader polls.
    map: MapData,
    /// Kept for as long as `memory` points into them.
    _consumer: Mapping,
    _producer: Mapping,
    memory: RingMemory,
    cursor: Cursor,
    /// A wrapped record, put back together.
    scratch: Vec<u8>,
}

/// How far the reader got.
struct Cursor {
    /// Records before it are read; the kernel learns of it at release.
    position: u64,
    /// The producer position last read: records up to it need no new read
    /// of the kernel's.
    producer: u64,
}

impl EventRing {
    /// Maps the ring behind `map`, a `BPF_MAP_TYPE_RINGBUF` whose size in
    /// bytes is `size`.
    pub fn new(map: MapData, size: usize) -> io::Result<EventRing> {
        let page = page_size();
        if !size.is_power_of_two() || size < page {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a ring of {size} bytes: not a power of two of at least a page"),
            ));
        }
        let fd = map.fd().as_fd();
        let consumer = Mapping::shared(fd, page, 0, true)?;
        let producer = Mapping::shared(fd, page + size, page, false)?;
        let data = producer.start().as_ptr().wrapping_add(page);
        let memory = RingMemory {
            consumer: consumer.start().cast(),
            producer: producer.start().cast(),
            data: NonNull::new(data).expect("inside a mapping"),
            size,
        };
        // SAFETY: the consumer position, in the mapping just made.
        let position = unsafe { AtomicU64::from_ptr(memory.consumer.as_ptr()) };
        let cursor = Cursor {
            position: position.load(Ordering::Relaxed),
            producer: 0,
        };
        Ok(EventRing {
            map,
            _consumer: consumer,
            _producer: producer,
            memory,
            cursor,
            scratch: Vec::new(),
        })
    }

    /// Passes the next committed record to `read`. `None` when no record
    /// is ready; the space of the records read is given back to the kernel
    /// then, or at [`EventRing::release`].
    pub fn next<T>(&mut self, read: impl FnOnce(&[u8]) -> T) -> Option<T> {
        // SAFETY (all three calls): `memory` points into the two mappings
        // this ring holds, laid out as the kernel lays out a ring of `size`
        // bytes.
        let (start, len) = match unsafe { self.memory.advance(&mut self.cursor) } {
            Some(found) => found,
            None => {
                // Dry: the kernel decides its wakeups by the stored
                // position, so store it, then look once more for a record
                // committed meanwhile.
                self.release();
                unsafe { self.memory.advance(&mut self.cursor) }?
            }
        };
        Some(read(unsafe {
            self.memory.record(start, len, &mut self.scratch)
        }))
    }

    /// Gives the space of every record read so far back to the kernel.
    pub fn release(&mut self) {
        // SAFETY: as in `next`.
        unsafe { self.memory.release(&self.cursor) }
    }
}

impl AsRawFd for EventRing {
    fn as_raw_fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}

/// Where a ring's positions and data are: the kernel's mappings, or plain
/// memory in tests.
struct RingMemory {
    consumer: NonNull<u64>,
    producer: NonNull<u64>,
    data: NonNull<u8>,
    size: usize,
}

// SAFETY: only the ring's one reader goes through these pointers, and the
// memory they point at is shared with the kernel, not with other threads.
unsafe impl Send for RingMemory {}

impl RingMemory {
    /// Finds the next committed record, skipping discarded ones, and moves
    /// the cursor past it: the offset of its bytes in the data, and their
    /// length. The bytes are the reader's until the position is released.
    ///
    /// # Safety
    /// The pointers must be valid for the ring's layout: 8 bytes at each
    /// position, `size` bytes of data, and no other consumer.
    unsafe fn advance(&self, cursor: &mut Cursor) -> Option<(usize, usize)> {
        let mask = self.size - 1;
        loop {
            if cursor.position >= cursor.producer {
                // SAFETY: an aligned word of the caller's memory.
                let producer = unsafe { AtomicU64::from_ptr(self.producer.as_ptr()) };
                // Acquire: the records up to the position are all reserved.
                cursor.producer = producer.load(Ordering::Acquire);
                if cursor.position >= cursor.producer {
                    return None;
                }
            }
            let offset = cursor.position as usize & mask;
            // SAFETY: headers are 8-byte aligned words inside the data.
            let header = unsafe { AtomicU32::from_ptr(self.data.as_ptr().add(offset).cast()) };
            // Acquire: a committed record's bytes are all written.
            let header = header.load(Ordering::Acquire);
            if header & BUSY != 0 {
                return None;
            }
            let len = (header & !(BUSY | DISCARD)) as usize;
            cursor.position += (HEADER + len).next_multiple_of(8) as u64;
            if header & DISCARD == 0 {
                return Some(((offset + HEADER) & mask, len));
            }
        }
    }

    /// Stores the cursor's position for the kernel.
    ///
    /// # Safety
    /// As [`RingMemory::advance`].
    unsafe fn release(&self, cursor: &Cursor) {
        // SAFETY: an aligned word of the caller's memory.
        let consumer = unsafe { AtomicU64::from_ptr(self.consumer.as_ptr()) };
        // Release: the kernel may reuse the space once it sees this.
        consumer.store(cursor.position, Ordering::Release);
    }

    /// `len` bytes from `start`, copied into `scratch` when they wrap.
    ///
    /// # Safety
    /// As [`RingMemory::advance`]; the bytes must be a record it found and
    /// whose space is not released yet.
    unsafe fn record<'a>(&'a self, start: usize, len: usize, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let data = self.data.as_ptr();
        if start + len <= self.size {
            // SAFETY: inside the data, per the caller.
            return unsafe { std::slice::from_raw_parts(data.add(start), len) };
        }
        let head = self.size - start;
        scratch.clear();
        // SAFETY: the tail of the data, then its beginning.
        unsafe {
            scratch.extend_from_slice(std::slice::from_raw_parts(data.add(start), head));
            scratch.extend_from_slice(std::slice::from_raw_parts(data, len - head));
        }
        scratch
    }
}

#[cfg(test)]
#[path = "event_ring_tests.rs"]
mod tests;

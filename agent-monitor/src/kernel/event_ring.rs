//! The kernel's event ring, with its data pages mapped once.
//!
//! The kernel lays a BPF ring's data pages out twice in a row, so that a
//! record which wraps past the end reads as one slice, and it fills in the
//! whole mapping at `mmap`. aya's `RingBuf` maps both copies, as libbpf
//! does: for the default 16 MiB ring that is 32 MiB of resident memory, a
//! quarter of the monitor's peak, spent so that a few records a lap need
//! not be copied. This reader maps the data once and copies a record that
//! wraps into a scratch buffer.
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
    /// The producer position last read: records up to it need no new read
    /// of the kernel's.
    producer: u64,
    /// A wrapped record, put back together.
    scratch: Vec<u8>,
}

impl EventRing {
    /// Maps the ring behind `map`, a `BPF_MAP_TYPE_RINGBUF` whose size in
    /// bytes is `size`.
    pub fn new(map: MapData, size: usize) -> io::Result<EventRing> {
        if !size.is_power_of_two() || size < page_size() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a ring of {size} bytes: not a power of two of at least a page"),
            ));
        }
        let page = page_size();
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
        Ok(EventRing {
            map,
            _consumer: consumer,
            _producer: producer,
            memory,
            producer: 0,
            scratch: Vec::new(),
        })
    }

    /// Passes the next committed record to `read`, then gives its space
    /// back to the kernel. `None` when no record is ready.
    pub fn next<T>(&mut self, read: impl FnOnce(&[u8]) -> T) -> Option<T> {
        // SAFETY: `memory` points into the two mappings this ring holds,
        // laid out as the kernel lays out a ring of `size` bytes.
        unsafe {
            self.memory
                .next(&mut self.producer, &mut self.scratch, read)
        }
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
    /// Reads the next committed record, skipping discarded ones.
    ///
    /// # Safety
    /// The pointers must be valid for the ring's layout: 8 bytes at each
    /// position, `size` bytes of data, and no other consumer.
    unsafe fn next<T>(
        &self,
        producer: &mut u64,
        scratch: &mut Vec<u8>,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Option<T> {
        // SAFETY (all atomics below): aligned words of the caller's memory.
        let consumer_pos = unsafe { AtomicU64::from_ptr(self.consumer.as_ptr()) };
        let producer_pos = unsafe { AtomicU64::from_ptr(self.producer.as_ptr()) };
        let mask = self.size - 1;
        // Only this reader moves the consumer position.
        let mut position = consumer_pos.load(Ordering::Relaxed);
        loop {
            if position >= *producer {
                // Acquire: the records up to the position are all reserved.
                *producer = producer_pos.load(Ordering::Acquire);
                if position >= *producer {
                    return None;
                }
            }
            let offset = position as usize & mask;
            let header = unsafe { AtomicU32::from_ptr(self.data.as_ptr().add(offset).cast()) };
            // Acquire: a committed record's bytes are all written.
            let header = header.load(Ordering::Acquire);
            if header & BUSY != 0 {
                return None;
            }
            let len = (header & !(BUSY | DISCARD)) as usize;
            let next = position + (HEADER + len).next_multiple_of(8) as u64;
            if header & DISCARD != 0 {
                consumer_pos.store(next, Ordering::Release);
                position = next;
                continue;
            }
            // SAFETY: the record's bytes are this reader's until the
            // consumer position passes them.
            let out = read(unsafe { self.record((offset + HEADER) & mask, len, scratch) });
            // Release: the kernel may reuse the space once it sees this.
            consumer_pos.store(next, Ordering::Release);
            return Some(out);
        }
    }

    /// `len` bytes from `start`, copied into `scratch` when they wrap.
    ///
    /// # Safety
    /// As [`RingMemory::next`]; the bytes must be a committed record.
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

use std::ptr::NonNull;

use super::{BUSY, Cursor, DISCARD, HEADER, RingMemory};

/// A ring in plain memory, written the way the kernel writes one.
struct FakeRing {
    consumer: Box<u64>,
    producer: Box<u64>,
    /// u64 words, so that headers are aligned as in the kernel's pages.
    data: Vec<u64>,
    size: usize,
}

impl FakeRing {
    fn new(size: usize) -> FakeRing {
        FakeRing {
            consumer: Box::new(0),
            producer: Box::new(0),
            data: vec![0; size / 8],
            size,
        }
    }

    /// Starts the ring at `position`, as after many laps.
    fn at(size: usize, position: u64) -> FakeRing {
        let ring = FakeRing::new(size);
        FakeRing {
            consumer: Box::new(position),
            producer: Box::new(position),
            ..ring
        }
    }

    fn memory(&mut self) -> RingMemory {
        RingMemory {
            consumer: NonNull::from(&mut *self.consumer),
            producer: NonNull::from(&mut *self.producer),
            data: NonNull::new(self.data.as_mut_ptr().cast()).unwrap(),
            size: self.size,
        }
    }

    fn byte(&mut self, position: u64) -> &mut u8 {
        let offset = position as usize & (self.size - 1);
        let bytes: &mut [u8] = as_bytes(&mut self.data);
        &mut bytes[offset]
    }

    /// Reserves and writes a record with the header flags `flags`; returns
    /// the position of its header.
    fn push(&mut self, payload: &[u8], flags: u32) -> u64 {
        let at = *self.producer;
        let header = (payload.len() as u32 | flags).to_le_bytes();
        for (i, b) in header.iter().enumerate() {
            *self.byte(at + i as u64) = *b;
        }
        for (i, b) in payload.iter().enumerate() {
            *self.byte(at + (HEADER + i) as u64) = *b;
        }
        *self.producer = at + (HEADER + payload.len()).next_multiple_of(8) as u64;
        at
    }

    /// Commits a record reserved busy: clears the bit, as the kernel does.
    fn commit(&mut self, at: u64) {
        *self.byte(at + 3) &= !((BUSY >> 24) as u8);
    }

    fn cursor(&self) -> Cursor {
        Cursor {
            position: *self.consumer,
            producer: 0,
        }
    }

    /// Reads every ready record, then releases their space.
    fn read_all(&mut self) -> Vec<Vec<u8>> {
        let memory = self.memory();
        let mut cursor = self.cursor();
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        // SAFETY: the fake ring's memory outlives the reads.
        unsafe {
            while let Some(record) = read_one(&memory, &mut cursor, &mut scratch) {
                out.push(record);
            }
            memory.release(&cursor);
        }
        out
    }
}

/// The next record, copied out, the way `EventRing::next` reads it.
///
/// # Safety
/// As `RingMemory::advance`.
unsafe fn read_one(
    memory: &RingMemory,
    cursor: &mut Cursor,
    scratch: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    // SAFETY: per the caller.
    unsafe {
        let (start, len) = memory.advance(cursor)?;
        Some(memory.record(start, len, scratch).to_vec())
    }
}

fn as_bytes(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirements.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) }
}

#[test]
fn reads_records_in_order_and_frees_their_space() {
    let mut ring = FakeRing::new(4096);
    ring.push(b"first", 0);
    ring.push(b"second record", 0);
    assert_eq!(
        ring.read_all(),
        vec![b"first".to_vec(), b"second record".to_vec()]
    );
    // Header and payload, each record rounded up to 8 bytes.
    assert_eq!(*ring.consumer, 16 + 24);
    assert_eq!(*ring.consumer, *ring.producer);
    assert!(ring.read_all().is_empty());
}

#[test]
fn skips_discarded_records() {
    let mut ring = FakeRing::new(4096);
    ring.push(b"kept", 0);
    ring.push(b"given up", DISCARD);
    ring.push(b"kept too", 0);
    assert_eq!(
        ring.read_all(),
        vec![b"kept".to_vec(), b"kept too".to_vec()]
    );
    assert_eq!(*ring.consumer, *ring.producer);
}

#[test]
fn a_busy_record_stops_the_read_until_it_is_committed() {
    let mut ring = FakeRing::new(4096);
    ring.push(b"before", 0);
    let busy = ring.push(b"being written", BUSY);
    ring.push(b"after", 0);
    assert_eq!(ring.read_all(), vec![b"before".to_vec()]);
    assert_eq!(*ring.consumer, busy, "the busy record's space is kept");
    ring.commit(busy);
    assert_eq!(
        ring.read_all(),
        vec![b"being written".to_vec(), b"after".to_vec()]
    );
}

#[test]
fn a_record_that_wraps_past_the_end_is_read_whole() {
    let size = 4096;
    // The header sits in the last 16 bytes: 8 of payload fit, 12 wrap.
    let mut ring = FakeRing::at(size, 10 * size as u64 - 16);
    let payload: Vec<u8> = (1..=20).collect();
    ring.push(&payload, 0);
    ring.push(b"next", 0);
    assert_eq!(ring.read_all(), vec![payload, b"next".to_vec()]);
    assert_eq!(*ring.consumer, 10 * size as u64 + 16 + 8 + 8);
}

#[test]
fn a_header_in_the_last_word_has_its_payload_at_the_start() {
    let size = 4096;
    let mut ring = FakeRing::at(size, 3 * size as u64 - 8);
    ring.push(b"starts at 0", 0);
    assert_eq!(ring.read_all(), vec![b"starts at 0".to_vec()]);
}

#[test]
fn records_written_after_an_empty_read_are_seen() {
    let mut ring = FakeRing::new(4096);
    let mut cursor = ring.cursor();
    let mut scratch = Vec::new();
    let memory = ring.memory();
    // SAFETY: the fake ring's memory outlives the reads.
    let empty = unsafe { read_one(&memory, &mut cursor, &mut scratch) };
    assert_eq!(empty, None);
    ring.push(b"late", 0);
    let memory = ring.memory();
    // SAFETY: as above.
    let late = unsafe { read_one(&memory, &mut cursor, &mut scratch) };
    assert_eq!(late, Some(b"late".to_vec()));
}

#[test]
fn the_kernel_sees_the_space_freed_only_at_release() {
    let mut ring = FakeRing::new(4096);
    ring.push(b"one", 0);
    ring.push(b"two", 0);
    let mut cursor = ring.cursor();
    let mut scratch = Vec::new();
    let memory = ring.memory();
    // SAFETY: the fake ring's memory outlives the reads.
    unsafe {
        assert_eq!(
            read_one(&memory, &mut cursor, &mut scratch),
            Some(b"one".to_vec())
        );
        assert_eq!(
            read_one(&memory, &mut cursor, &mut scratch),
            Some(b"two".to_vec())
        );
    }
    assert_eq!(*ring.consumer, 0, "nothing given back yet");
    // SAFETY: as above.
    unsafe { ring.memory().release(&cursor) };
    assert_eq!(*ring.consumer, 32);
}

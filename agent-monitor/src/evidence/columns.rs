//! Column builders that defer their nulls.
//!
//! Most columns of `events` are null in most rows: a file open leaves the
//! fifty-odd network, process and privilege columns empty. Appending those
//! nulls one by one was the largest cost of the store. A [`Lazy`] builder
//! only counts them, and writes a run of nulls in one call when the next
//! value (or the end of the batch) comes.

use arrow_array::{
    Array, ArrowPrimitiveType, BooleanArray, ListArray, PrimitiveArray, StringArray,
    builder::{BooleanBuilder, ListBuilder, PrimitiveBuilder, StringBuilder},
};

/// An Arrow builder that can take a run of nulls at once.
pub trait Column: Default {
    type Array;
    fn append_nulls(&mut self, n: usize);
    fn finish(&mut self) -> Self::Array;

    /// The room (items, bytes) a batch like `array` takes, for builders
    /// worth sizing up front.
    fn room(_array: &Self::Array) -> Option<Room> {
        None
    }

    fn with_room(_room: Room) -> Self {
        Self::default()
    }
}

/// Items and bytes of text a builder is sized for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    items: usize,
    bytes: usize,
}

impl Column for StringBuilder {
    type Array = StringArray;
    fn append_nulls(&mut self, n: usize) {
        StringBuilder::append_nulls(self, n);
    }
    fn finish(&mut self) -> StringArray {
        StringBuilder::finish(self)
    }
    fn room(array: &StringArray) -> Option<Room> {
        Some(Room {
            items: array.len(),
            bytes: array.value_data().len(),
        })
    }
    fn with_room(room: Room) -> Self {
        StringBuilder::with_capacity(room.items, room.bytes)
    }
}

impl Column for BooleanBuilder {
    type Array = BooleanArray;
    fn append_nulls(&mut self, n: usize) {
        BooleanBuilder::append_nulls(self, n);
    }
    fn finish(&mut self) -> BooleanArray {
        BooleanBuilder::finish(self)
    }
}

impl<T: ArrowPrimitiveType> Column for PrimitiveBuilder<T> {
    type Array = PrimitiveArray<T>;
    fn append_nulls(&mut self, n: usize) {
        PrimitiveBuilder::append_nulls(self, n);
    }
    fn finish(&mut self) -> PrimitiveArray<T> {
        PrimitiveBuilder::finish(self)
    }
    fn room(array: &PrimitiveArray<T>) -> Option<Room> {
        Some(Room {
            items: array.len(),
            bytes: 0,
        })
    }
    fn with_room(room: Room) -> Self {
        PrimitiveBuilder::with_capacity(room.items)
    }
}

impl<B: arrow_array::builder::ArrayBuilder + Default> Column for ListBuilder<B> {
    type Array = ListArray;
    fn append_nulls(&mut self, n: usize) {
        ListBuilder::append_nulls(self, n);
    }
    fn finish(&mut self) -> ListArray {
        ListBuilder::finish(self)
    }
}

/// A builder, the nulls owed to it, and the room the last batch took.
///
/// A builder grown from nothing copies its buffers at every doubling, a
/// batch's worth of copying for every batch: sized like the last batch,
/// the sustained pipeline bench copies 330 instructions' worth less per
/// event and runs 1–6% faster. Sizing it when the batch is finished held
/// both batches' buffers at once (peak RSS at 480,000 events/s 150–154 MiB,
/// against 117–121 MiB grown from nothing); it is sized at the next
/// batch's first value instead, once the finished batch is written and
/// freed (125–128 MiB).
#[derive(Default)]
pub struct Lazy<B> {
    builder: B,
    pending: usize,
    room: Option<Room>,
}

impl<B: Column> Lazy<B> {
    /// The builder, with the nulls owed to it written: ready for a value.
    pub fn get(&mut self) -> &mut B {
        if let Some(room) = self.room.take() {
            self.builder = B::with_room(room);
        }
        self.write_nulls()
    }

    fn write_nulls(&mut self) -> &mut B {
        if self.pending > 0 {
            self.builder.append_nulls(self.pending);
            self.pending = 0;
        }
        &mut self.builder
    }

    pub fn append_null(&mut self) {
        self.pending += 1;
    }

    pub fn finish(&mut self) -> B::Array {
        let array = self.write_nulls().finish();
        self.room = B::room(&array);
        array
    }
}

impl Lazy<StringBuilder> {
    pub fn append_value(&mut self, value: &str) {
        self.get().append_value(value);
    }

    pub fn append_option(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.append_value(value),
            None => self.append_null(),
        }
    }
}

impl Lazy<BooleanBuilder> {
    pub fn append_option(&mut self, value: Option<bool>) {
        match value {
            Some(value) => self.get().append_value(value),
            None => self.append_null(),
        }
    }
}

impl<T: ArrowPrimitiveType> Lazy<PrimitiveBuilder<T>> {
    pub fn append_value(&mut self, value: T::Native) {
        self.get().append_value(value);
    }

    pub fn append_option(&mut self, value: Option<T::Native>) {
        match value {
            Some(value) => self.append_value(value),
            None => self.append_null(),
        }
    }
}

impl Lazy<ListBuilder<StringBuilder>> {
    /// A list of strings, or a null list.
    pub fn append_strings(&mut self, items: Option<&[String]>) {
        match items {
            Some(items) => {
                let builder = self.get();
                for item in items {
                    builder.values().append_value(item);
                }
                builder.append(true);
            }
            None => self.append_null(),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, types::Int64Type};

    use super::*;

    #[test]
    fn deferred_nulls_land_where_they_were_appended() {
        let mut column = Lazy::<StringBuilder>::default();
        column.append_null();
        column.append_null();
        column.append_value("a");
        column.append_option(None);
        column.append_option(Some("b"));
        column.append_null();
        let array = column.finish();
        let values: Vec<Option<&str>> = array.iter().collect();
        assert_eq!(values, [None, None, Some("a"), None, Some("b"), None]);

        let mut numbers = Lazy::<PrimitiveBuilder<Int64Type>>::default();
        numbers.append_null();
        numbers.append_value(7);
        numbers.append_null();
        let array = numbers.finish();
        assert_eq!(array.len(), 3);
        assert_eq!(array.null_count(), 2);
        assert_eq!(array.value(1), 7);

        let mut lists = Lazy::<ListBuilder<StringBuilder>>::default();
        lists.append_strings(None);
        lists.append_strings(Some(&["x".to_string()]));
        lists.append_strings(None);
        let array = lists.finish();
        assert_eq!((array.len(), array.null_count()), (3, 2));
        assert!(array.is_valid(1));
        // The builder starts empty again after a batch.
        assert_eq!(lists.finish().len(), 0);
    }

    #[test]
    fn a_builder_is_sized_like_the_last_batch_at_its_first_value() {
        let mut numbers = Lazy::<PrimitiveBuilder<Int64Type>>::default();
        for n in 0..1000 {
            numbers.append_value(n);
        }
        assert_eq!(numbers.finish().len(), 1000);
        // Not while the finished batch may still be alive: nulls are only
        // counted, and the builder stays as it was.
        numbers.append_null();
        assert!(numbers.builder.capacity() < 1000);
        numbers.append_value(1);
        assert!(numbers.builder.capacity() >= 1000);
        let array = numbers.finish();
        assert_eq!((array.len(), array.null_count(), array.value(1)), (2, 1, 1));

        let mut text = Lazy::<StringBuilder>::default();
        text.append_value("abc");
        text.append_null();
        text.finish();
        text.append_value("de");
        assert_eq!(text.room, None, "the room is used once, by the first value");
        let array = text.finish();
        assert_eq!((array.len(), array.value(0)), (1, "de"));
        assert_eq!(text.room, Some(Room { items: 1, bytes: 2 }));
    }
}

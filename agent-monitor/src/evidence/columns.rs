//! Column builders that defer their nulls.
//!
//! Most columns of `events` are null in most rows: a file open leaves the
//! fifty-odd network, process and privilege columns empty. Appending those
//! nulls one by one was the largest cost of the store. A [`Lazy`] builder
//! only counts them, and writes a run of nulls in one call when the next
//! value (or the end of the batch) comes.

use arrow_array::{
    ArrowPrimitiveType, BooleanArray, ListArray, PrimitiveArray, StringArray,
    builder::{BooleanBuilder, ListBuilder, PrimitiveBuilder, StringBuilder},
};

/// An Arrow builder that can take a run of nulls at once.
pub trait Column: Default {
    type Array;
    fn append_nulls(&mut self, n: usize);
    fn finish(&mut self) -> Self::Array;
}

impl Column for StringBuilder {
    type Array = StringArray;
    fn append_nulls(&mut self, n: usize) {
        StringBuilder::append_nulls(self, n);
    }
    fn finish(&mut self) -> StringArray {
        StringBuilder::finish(self)
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

/// A builder and the nulls owed to it.
#[derive(Default)]
pub struct Lazy<B> {
    builder: B,
    pending: usize,
}

impl<B: Column> Lazy<B> {
    /// The builder, with the nulls owed to it written: ready for a value.
    pub fn get(&mut self) -> &mut B {
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
        self.get();
        self.builder.finish()
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
}

//! A cache of freed buffers, so that a steady training or inference loop stops paying page faults.
//!
//! On this class of machine a fresh 64 MB output costs more in page faults than the arithmetic
//! that fills it; reusing a buffer that was touched before avoids them.

use crate::compat::{Box, HashMap, Mutex, Vec};
use core::any::{Any, TypeId};

/// Buffers smaller than this are left to the allocator.
const MIN_BYTES: usize = 1 << 16;
/// The cache never holds more than this many bytes.
const MAX_BYTES: usize = 1 << 30;
/// Without `std` (small embedded memories, an export runtime with its own memory plan) freed
/// buffers go straight back to the allocator.
const CACHING: bool = cfg!(feature = "std");
/// Buffers kept per (type, length).
const MAX_PER_KEY: usize = 4;

#[derive(Default)]
pub(crate) struct BufferCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    free: HashMap<(TypeId, usize), Vec<Box<dyn Any + Send>>>,
    bytes: usize,
}

impl BufferCache {
    /// A previously used buffer of exactly `len` elements (its contents are stale), if one is free.
    pub(crate) fn take<E: 'static + Send>(&self, len: usize) -> Option<Vec<E>> {
        if len * size_of::<E>() < MIN_BYTES || !CACHING {
            return None;
        }
        let mut inner = self.inner.lock();
        let buf = inner.free.get_mut(&(TypeId::of::<E>(), len))?.pop()?;
        inner.bytes -= len * size_of::<E>();
        buf.downcast::<Vec<E>>().ok().map(|b| *b)
    }

    /// Offers a buffer back; it is dropped when the cache is full.
    pub(crate) fn give<E: 'static + Send>(&self, buf: Vec<E>) {
        let bytes = buf.len() * size_of::<E>();
        if bytes < MIN_BYTES || !CACHING {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.bytes + bytes > MAX_BYTES {
            return;
        }
        let slot = inner.free.entry((TypeId::of::<E>(), buf.len())).or_default();
        if slot.len() < MAX_PER_KEY {
            slot.push(Box::new(buf));
            inner.bytes += bytes;
        }
    }

    /// Drops every cached buffer.
    pub(crate) fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.free.clear();
        inner.bytes = 0;
    }
}

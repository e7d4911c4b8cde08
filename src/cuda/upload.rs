//! One host → device copy per batch: everything a batch needs on the device (token ids, types,
//! positions, the attention mask, the rows a head gathers, its targets, the embedding
//! backward's plan) is packed on the host into one staging area ([`Staging`]) and copied in one
//! call into a device buffer that is reused batch after batch ([`Slot`]), then cut into typed
//! views ([`Staged`]).

use super::device::{Buf, Dev, Dtype, Gpu};
use crate::{Error, Result};

/// A device buffer reused across batches: it grows (reallocating) when a batch needs more and
/// never shrinks, so after the largest batch has been seen no step allocates.
#[derive(Default)]
pub struct Slot {
    buf: Option<Buf>,
    what: &'static str,
}

impl Slot {
    /// An empty slot whose allocations are named `what` in out-of-memory errors.
    pub fn new(what: &'static str) -> Slot {
        Slot { buf: None, what }
    }

    /// Makes room for `n` elements of `dtype` (new memory is uninitialised: NaN bytes on the
    /// emulator, so a read of an unwritten element shows).
    pub fn ensure(&mut self, g: &Gpu, n: usize, dtype: Dtype) -> Result<()> {
        if self.buf.as_ref().is_some_and(|b| b.dtype() == dtype && b.len() >= n) {
            return Ok(());
        }
        self.buf = None; // free first: the old and new buffers need not fit together
        self.buf = Some(g.alloc_uninit(n.max(1), dtype, self.what)?);
        Ok(())
    }

    /// Makes room for `n` elements like [`Slot::ensure`], keeping the first `keep` elements of
    /// the old contents.
    pub fn grow_keeping(&mut self, g: &Gpu, n: usize, dtype: Dtype, keep: usize) -> Result<()> {
        if self.buf.as_ref().is_some_and(|b| b.dtype() == dtype && b.len() >= n) {
            return Ok(());
        }
        let new = g.alloc_uninit(n.max(1), dtype, self.what)?;
        if let Some(old) = &self.buf {
            let keep = keep.min(old.len()).min(n);
            if keep > 0 && old.dtype() == dtype {
                g.copy(new.view(keep), old.view(keep))?;
            }
        }
        self.buf = Some(new);
        Ok(())
    }

    /// The first `n` elements (after [`Slot::ensure`] with at least `n`).
    pub fn view(&self, n: usize) -> Result<Dev<'_>> {
        match &self.buf {
            Some(b) if b.len() >= n => Ok(b.view(n)),
            _ => Err(Error::Usage(format!("{}: {n} elements asked of a buffer not made for them", self.what))),
        }
    }

    /// Capacity in elements (0 before the first allocation).
    pub fn capacity(&self) -> usize {
        self.buf.as_ref().map_or(0, Buf::len)
    }
}

/// u32 words a batch of N = B·T tokens can need in its upload, whatever its content: the
/// encoder inputs (4N), a head's rows (≤ N) and targets (≤ 2N i64), the embedding backward's
/// plan (≤ 3 · (3N + 1)), and alignment. Reserving this once per shape keeps a batch whose ids
/// happen to be more varied from reallocating.
pub fn upload_bound(n: usize) -> usize {
    22 * n + 64
}

/// Where one array lies in the staging area: byte offset, element count and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    offset: usize,
    len: usize,
    dtype: Dtype,
}

/// The host side of a batch upload: arrays appended one after the other, each aligned to its
/// element size (8 bytes for i64).
#[derive(Default)]
pub struct Staging {
    bytes: Vec<u8>,
}

impl Staging {
    /// Empties the staging area, keeping its memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    fn push(&mut self, data: &[u8], len: usize, dtype: Dtype) -> Part {
        let align = dtype.size().max(4);
        let offset = self.bytes.len().next_multiple_of(align);
        self.bytes.resize(offset, 0);
        self.bytes.extend_from_slice(data);
        Part { offset, len, dtype }
    }

    /// Appends u32 values.
    pub fn u32s(&mut self, v: &[u32]) -> Part {
        self.push(bytemuck::cast_slice(v), v.len(), Dtype::U32)
    }

    /// Appends f32 values.
    pub fn f32s(&mut self, v: &[f32]) -> Part {
        self.push(bytemuck::cast_slice(v), v.len(), Dtype::F32)
    }

    /// Appends i64 values.
    pub fn i64s(&mut self, v: &[i64]) -> Part {
        self.push(bytemuck::cast_slice(v), v.len(), Dtype::I64)
    }

    /// Copies the staging area into `slot` (grown as needed) in one call.
    pub fn upload<'s>(&self, g: &Gpu, slot: &'s mut Slot) -> Result<Staged<'s>> {
        let words = self.bytes.len().div_ceil(4).max(1);
        slot.ensure(g, words, Dtype::U32)?;
        let dev = slot.view(words)?;
        g.write_bytes(dev, &self.bytes)?;
        Ok(Staged { dev })
    }
}

/// A staging area on the device, cut into typed views by the [`Part`]s that built it.
#[derive(Clone, Copy)]
pub struct Staged<'a> {
    dev: Dev<'a>,
}

impl<'a> Staged<'a> {
    /// The view of `part`.
    pub fn view(&self, part: Part) -> Dev<'a> {
        let words = part.len * part.dtype.size() / 4;
        self.dev.at(part.offset / 4, words).cast(part.dtype)
    }
}

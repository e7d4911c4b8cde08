//! NumPy `.npy` (format 1.0) writer and reader for float32 C-order arrays.

use crate::error::{Error, Result};
use crate::fsutil::atomic_write_with;
use std::io::Write;
use std::path::Path;

/// The `.npy` header for a little-endian f32 C-order array, padded to a multiple of 64 bytes.
fn header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let mut h = Vec::with_capacity(unpadded + pad);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((dict.len() + pad + 1) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.extend(std::iter::repeat_n(b' ', pad));
    h.push(b'\n');
    h
}

/// Writes `data` with `shape` as float32 `.npy`, atomically.
pub fn write_f32(path: &Path, data: &[f32], shape: &[usize]) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(Error::Usage(format!("npy shape {shape:?} holds {n} values, got {}", data.len())));
    }
    atomic_write_with(path, |w| {
        w.write_all(&header(shape))?;
        for x in data {
            w.write_all(&x.to_le_bytes())?;
        }
        Ok(())
    })
}

/// Reads a float32 C-order `.npy` file: (data, shape).
pub fn read_f32(path: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |msg: &str| Error::format(path, format!("not a float32 .npy file: {msg}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing magic"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Err(bad("unknown version")),
    };
    let dict = std::str::from_utf8(bytes.get(start..start + hlen).ok_or_else(|| bad("truncated header"))?)
        .map_err(|_| bad("header is not text"))?;
    if !dict.contains("'descr': '<f4'") || dict.contains("'fortran_order': True") {
        return Err(bad("expected descr '<f4' in C order"));
    }
    let shape_txt = dict.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let body = &bytes[start + hlen..];
    let n: usize = shape.iter().product();
    if body.len() != n * 4 {
        return Err(bad(&format!("shape {shape:?} needs {} bytes of data, file has {}", n * 4, body.len())));
    }
    Ok((body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), shape))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_header_alignment() {
        let dir = std::env::temp_dir().join(format!("xlt-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let data: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
        super::write_f32(&p, &data, &[2, 3]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 24) % 64, 0, "header is padded to 64 bytes");
        let (back, shape) = super::read_f32(&p).unwrap();
        assert_eq!((back, shape), (data, vec![2, 3]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

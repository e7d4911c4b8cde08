//! The input embeddings on the GPU (kernels/embedding.cu): the twins of
//! `cpu::ops::embedding_forward` and `cpu::ops::embedding_backward`.
//!
//! The backward is a scatter-add without atomics: the host, which has the ids anyway, groups
//! the rows of dout by the table row they feed, and each GPU block adds one table row's dout
//! rows in increasing order onto the f32 gradient row, the CPU's own order, so the result is
//! deterministic and (in f32) bit-identical to the CPU's.

use crate::cuda::device::{launch, Dev, Dtype, Gpu};
use crate::{Error, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// Threads per block of the forward (grid-stride over N · C elements).
const FORWARD_BLOCK: u32 = 256;
/// Channels per block of the backward: a block adds one table row's slice of this many channels.
const BACKWARD_BLOCK: u32 = 128;

/// `x` as a kernel `int`, or an error naming `what`.
fn int(what: &str, x: usize) -> Result<i32> {
    i32::try_from(x).map_err(|_| Error::Usage(format!("{what}: {x} is more than a CUDA kernel's int can index")))
}

/// out (N, C) = wte[ids] + wpe[pos] + wtt[types]; tables wte (V, C), wpe (P, C), wtt (TT, C)
/// in the activation dtype, ids, pos, types (N) u32. The table sizes are the views' lengths / C.
/// The GPU cannot report an id past its table: such a row comes out NaN (no wild read).
pub fn embedding_forward(
    g: &Gpu,
    out: Dev,
    ids: Dev,
    pos: Dev,
    types: Dev,
    wte: Dev,
    wpe: Dev,
    wtt: Dev,
    n: usize,
    c: usize,
) -> Result<()> {
    let x = wte.dtype;
    if !x.is_float() {
        return Err(Error::Usage(format!("embedding_forward wte: expected a float table, got {x:?}")));
    }
    out.check("embedding_forward out", n * c, x)?;
    ids.check("embedding_forward ids", n, Dtype::U32)?;
    pos.check("embedding_forward pos", n, Dtype::U32)?;
    types.check("embedding_forward types", n, Dtype::U32)?;
    wte.check("embedding_forward wte", c, x)?;
    wpe.check("embedding_forward wpe", c, x)?;
    wtt.check("embedding_forward wtt", c, x)?;
    let total = int("embedding_forward N·C", n * c)?;
    if total == 0 {
        return Ok(());
    }
    let (n_i32, c_i32) = (int("embedding_forward N", n)?, int("embedding_forward C", c)?);
    let v = int("embedding_forward V", wte.len / c)?;
    let p = int("embedding_forward P", wpe.len / c)?;
    let tt = int("embedding_forward TT", wtt.len / c)?;
    let blocks = (n * c).div_ceil(FORWARD_BLOCK as usize).min(g.sm_count.max(1) * 32);
    let cfg = LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (FORWARD_BLOCK, 1, 1), shared_mem_bytes: 0 };
    let f = g.kernel("embedding_forward", x)?;
    let mut b = g.builder(&f);
    b.arg(&out.ptr).arg(&ids.ptr).arg(&pos.ptr).arg(&types.ptr).arg(&wte.ptr).arg(&wpe.ptr).arg(&wtt.ptr);
    b.arg(&n_i32).arg(&c_i32).arg(&v).arg(&p).arg(&tt);
    // SAFETY: argument list matches embedding_forward_<T>(T*, u32*, u32*, u32*, T*, T*, T*, int × 6);
    // out holds N·C, ids/pos/types N, the tables V·C, P·C, TT·C elements (checked above).
    unsafe { launch(&mut b, cfg, "embedding_forward") }
}

/// The rows of one table that a batch touches, grouped: `rows` the distinct table rows in
/// increasing order, `offsets` (rows + 1) where each one's list starts in `members`, `members`
/// the indices i whose id is that row, increasing. Ids equal to `skip` are left out.
struct Groups {
    rows: Vec<u32>,
    offsets: Vec<u32>,
    members: Vec<u32>,
}

/// Groups `ids` (N) by value for a table of `table_rows` rows; an id past the table is an error.
fn group(what: &str, ids: &[u32], skip: Option<u32>, table_rows: usize) -> Result<Groups> {
    if let Some((i, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= table_rows) {
        return Err(Error::Usage(format!(
            "embedding_backward: {what}[{i}] = {id} is outside a table of {table_rows} rows"
        )));
    }
    // (row, i) pairs sorted: rows increasing, and within a row the indices increasing (the
    // indices are distinct, so an unstable sort of the pairs is the stable sort by row).
    let mut pairs: Vec<(u32, u32)> =
        ids.iter().enumerate().filter(|(_, &id)| Some(id) != skip).map(|(i, &id)| (id, i as u32)).collect();
    pairs.sort_unstable();
    let mut g = Groups { rows: Vec::new(), offsets: Vec::new(), members: Vec::with_capacity(pairs.len()) };
    for (k, &(row, i)) in pairs.iter().enumerate() {
        if g.rows.last() != Some(&row) {
            g.rows.push(row);
            g.offsets.push(k as u32);
        }
        g.members.push(i);
    }
    g.offsets.push(pairs.len() as u32);
    Ok(g)
}

/// Scatter-adds dout (N, C) into the rows of dwte (V, C), dwpe (P, C), dwtt (TT, C), all f32
/// (`+=`); `ids`, `pos`, `types` (N) are host copies of the ids the forward used (the GPU
/// grouping is planned on the host). Like `nn.Embedding(padding_idx=...)`, row `word_pad` of
/// wte and `pos_pad` of wpe receive no gradient. An id outside its table is `Error::Usage`.
/// Differentiates `o = wte[w] + wpe[p] + wtt[tt]`.
pub fn embedding_backward(
    g: &Gpu,
    dwte: Dev,
    dwpe: Dev,
    dwtt: Dev,
    dout: Dev,
    ids: &[u32],
    pos: &[u32],
    types: &[u32],
    word_pad: Option<u32>,
    pos_pad: Option<u32>,
    n: usize,
    c: usize,
) -> Result<()> {
    let x = dout.dtype;
    if !x.is_float() {
        return Err(Error::Usage(format!("embedding_backward dout: expected a float view, got {x:?}")));
    }
    dout.check("embedding_backward dout", n * c, x)?;
    dwte.check("embedding_backward dwte", c, Dtype::F32)?;
    dwpe.check("embedding_backward dwpe", c, Dtype::F32)?;
    dwtt.check("embedding_backward dwtt", c, Dtype::F32)?;
    for (what, v) in [("ids", ids), ("pos", pos), ("types", types)] {
        if v.len() < n {
            return Err(Error::Usage(format!("embedding_backward {what}: expected at least {n} ids, got {}", v.len())));
        }
    }
    int("embedding_backward N·C", n * c)?;
    if n == 0 || c == 0 {
        return Ok(());
    }
    let c_i32 = int("embedding_backward C", c)?;
    let tables = [
        (dwte, group("ids", &ids[..n], word_pad, dwte.len / c)?),
        (dwpe, group("pos", &pos[..n], pos_pad, dwpe.len / c)?),
        (dwtt, group("types", &types[..n], None, dwtt.len / c)?),
    ];
    // One upload for all three plans: [rows | offsets | members] per table.
    let mut host: Vec<u32> = Vec::new();
    let mut at = Vec::with_capacity(3);
    for (_, gr) in &tables {
        at.push(host.len());
        host.extend_from_slice(&gr.rows);
        host.extend_from_slice(&gr.offsets);
        host.extend_from_slice(&gr.members);
    }
    let plan = g.alloc(host.len(), Dtype::U32, "the embedding gradient plan")?;
    g.write_u32(plan.dev(), &host)?;
    let f = g.kernel("embedding_backward", x)?;
    for ((table, gr), &start) in tables.iter().zip(&at) {
        let u = gr.rows.len();
        if u == 0 {
            continue; // every id of the batch is padding
        }
        let u_i32 = int("embedding_backward rows", u)?;
        let rows = plan.dev().at(start, u);
        let offsets = plan.dev().at(start + u, u + 1);
        let members = plan.dev().at(start + 2 * u + 1, gr.members.len());
        let cfg = LaunchConfig {
            grid_dim: (u as u32, c.div_ceil(BACKWARD_BLOCK as usize) as u32, 1),
            block_dim: (BACKWARD_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = g.builder(&f);
        b.arg(&table.ptr).arg(&dout.ptr).arg(&rows.ptr).arg(&offsets.ptr).arg(&members.ptr).arg(&u_i32).arg(&c_i32);
        // SAFETY: argument list matches embedding_backward_<T>(float*, T*, u32*, u32*, u32*, int, int);
        // every row in `rows` is < the table's rows and every member < N (checked while
        // grouping), dout holds N·C elements; `plan` outlives the launch (freed at the end of
        // this function after a sync).
        unsafe { launch(&mut b, cfg, "embedding_backward")? };
    }
    // The launches above read `plan`: wait for them before it is freed.
    g.sync()?;
    drop(plan);
    Ok(())
}

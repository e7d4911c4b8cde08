//! The input embeddings on the GPU (kernels/embedding.cu): the twins of
//! `cpu::ops::embedding_forward` and `cpu::ops::embedding_backward`.
//!
//! The backward is a scatter-add without atomics: the host, which has the ids anyway, groups
//! the rows of dout by the table row they feed ([`EmbeddingGroups`], uploaded with the batch),
//! and each GPU block adds one table row's dout rows in increasing order onto the f32 gradient
//! row, the CPU's own order, so the result is deterministic and (in f32) bit-identical to the
//! CPU's.

use crate::cuda::device::{Dev, Dtype, Gpu};
use crate::cuda::kernels::Kernel;
use crate::cuda::launch::{grid, int, stride_blocks, KArg, Launch};
use crate::{Error, Result};

/// Threads per block of the forward (grid-stride over N · C elements).
const FORWARD_BLOCK: u32 = 256;
/// Channels per block of the backward: a block adds one table row's slice of this many channels.
const BACKWARD_BLOCK: u32 = 128;

/// out (N, C) = wte[ids] + wpe[pos] + wtt[types]; tables wte (V, C), wpe (P, C), wtt (TT, C)
/// in the activation dtype, ids, pos, types (N) u32. The table sizes are the views' lengths / C.
/// The GPU cannot report an id past its table: such a row comes out NaN (no wild read).
pub fn embedding_forward_plan(
    out: Dev,
    ids: Dev,
    pos: Dev,
    types: Dev,
    wte: Dev,
    wpe: Dev,
    wtt: Dev,
    n: usize,
    c: usize,
) -> Result<Option<Launch>> {
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
    int("embedding_forward N·C", n * c)?;
    if n * c == 0 {
        return Ok(None);
    }
    let (n_i32, c_i32) = (int("embedding_forward N", n)?, int("embedding_forward C", c)?);
    let v = int("embedding_forward V", wte.len / c)?;
    let p = int("embedding_forward P", wpe.len / c)?;
    let tt = int("embedding_forward TT", wtt.len / c)?;
    let args = [
        KArg::ptr(out),
        KArg::ptr(ids),
        KArg::ptr(pos),
        KArg::ptr(types),
        KArg::ptr(wte),
        KArg::ptr(wpe),
        KArg::ptr(wtt),
        KArg::I32(n_i32),
        KArg::I32(c_i32),
        KArg::I32(v),
        KArg::I32(p),
        KArg::I32(tt),
    ];
    let gr = grid([stride_blocks(n * c, FORWARD_BLOCK), 1, 1], FORWARD_BLOCK, 0)?;
    Launch::new(Kernel::EmbeddingForward, x, gr, &args).map(Some)
}

/// The rows of one table that a batch touches, grouped: `rows` the distinct table rows in
/// increasing order, `offsets` (rows + 1) where each one's list starts in `members`, `members`
/// the indices i whose id is that row, increasing. Ids equal to `skip` are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Groups {
    rows: Vec<u32>,
    offsets: Vec<u32>,
    members: Vec<u32>,
}

impl Groups {
    /// Groups `ids` (N) by value for a table of `table_rows` rows; an id past the table is an
    /// error.
    fn new(what: &str, ids: &[u32], skip: Option<u32>, table_rows: usize) -> Result<Groups> {
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

    /// u32 elements of the packed form [rows | offsets | members].
    fn len(&self) -> usize {
        self.rows.len() + self.offsets.len() + self.members.len()
    }
}

/// The embedding backward's work plan for one batch, made on the host from the ids the
/// forward used: for each of the word, position and type tables, the table rows the batch
/// touches and which of its N rows feed each. Like `nn.Embedding(padding_idx=...)`, row
/// `word_pad` of wte and `pos_pad` of wpe receive no gradient. Uploaded as u32s
/// ([`EmbeddingGroups::pack`]) before the step, so the backward needs no copy of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmbeddingGroups {
    tables: [Groups; 3],
}

impl EmbeddingGroups {
    /// The groups of ids, pos and types (N each) for tables of `rows` = [V, P, TT] rows; an id
    /// outside its table is `Error::Usage`.
    pub fn new(
        ids: &[u32],
        pos: &[u32],
        types: &[u32],
        word_pad: Option<u32>,
        pos_pad: Option<u32>,
        rows: [usize; 3],
    ) -> Result<EmbeddingGroups> {
        Ok(EmbeddingGroups {
            tables: [
                Groups::new("ids", ids, word_pad, rows[0])?,
                Groups::new("pos", pos, pos_pad, rows[1])?,
                Groups::new("types", types, None, rows[2])?,
            ],
        })
    }

    /// u32 elements of the packed plan.
    pub fn len(&self) -> usize {
        self.tables.iter().map(Groups::len).sum()
    }

    /// Whether the plan is empty (no batch).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the packed plan, [rows | offsets | members] per table, to `out`.
    pub fn pack(&self, out: &mut Vec<u32>) {
        for t in &self.tables {
            out.extend_from_slice(&t.rows);
            out.extend_from_slice(&t.offsets);
            out.extend_from_slice(&t.members);
        }
    }
}

/// Scatter-adds dout (N, C) into the rows of dwte (V, C), dwpe (P, C), dwtt (TT, C), all f32
/// (`+=`), following `groups`, whose packed form is `plan` (u32, on the device). One launch per
/// table that the batch touches. Differentiates `o = wte[w] + wpe[p] + wtt[tt]`.
pub fn embedding_backward_plans(
    dwte: Dev,
    dwpe: Dev,
    dwtt: Dev,
    dout: Dev,
    groups: &EmbeddingGroups,
    plan: Dev,
    n: usize,
    c: usize,
) -> Result<Vec<Launch>> {
    let x = dout.dtype;
    if !x.is_float() {
        return Err(Error::Usage(format!("embedding_backward dout: expected a float view, got {x:?}")));
    }
    dout.check("embedding_backward dout", n * c, x)?;
    plan.check("embedding_backward plan", groups.len(), Dtype::U32)?;
    int("embedding_backward N·C", n * c)?;
    if n == 0 || c == 0 {
        return Ok(Vec::new());
    }
    let c_i32 = int("embedding_backward C", c)?;
    let mut launches = Vec::with_capacity(3);
    let mut start = 0;
    for ((table, name), gr) in [(dwte, "dwte"), (dwpe, "dwpe"), (dwtt, "dwtt")].into_iter().zip(&groups.tables) {
        table.check(&format!("embedding_backward {name}"), c, Dtype::F32)?;
        let u = gr.rows.len();
        if let Some(&last) = gr.rows.last() {
            table.check(&format!("embedding_backward {name}"), (last as usize + 1) * c, Dtype::F32)?;
        }
        if gr.members.iter().any(|&i| i as usize >= n) {
            return Err(Error::Usage(format!("embedding_backward: the {name} plan names a row past N = {n}")));
        }
        let (rows, offsets, members) =
            (plan.at(start, u), plan.at(start + u, u + 1), plan.at(start + 2 * u + 1, gr.members.len()));
        start += gr.len();
        if u == 0 {
            continue; // every id of the batch is padding
        }
        let args = [
            KArg::ptr(table),
            KArg::ptr(dout),
            KArg::ptr(rows),
            KArg::ptr(offsets),
            KArg::ptr(members),
            KArg::I32(int("embedding_backward rows", u)?),
            KArg::I32(c_i32),
        ];
        let gr = grid([u, c.div_ceil(BACKWARD_BLOCK as usize), 1], BACKWARD_BLOCK, 0)?;
        launches.push(Launch::new(Kernel::EmbeddingBackward, x, gr, &args)?);
    }
    Ok(launches)
}

/// Embedding forward on the GPU (see [`embedding_forward_plan`]).
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
    g.run(embedding_forward_plan(out, ids, pos, types, wte, wpe, wtt, n, c)?)
}

/// Embedding backward on the GPU (see [`embedding_backward_plans`]).
pub fn embedding_backward(
    g: &Gpu,
    dwte: Dev,
    dwpe: Dev,
    dwtt: Dev,
    dout: Dev,
    groups: &EmbeddingGroups,
    plan: Dev,
    n: usize,
    c: usize,
) -> Result<()> {
    g.run(embedding_backward_plans(dwte, dwpe, dwtt, dout, groups, plan, n, c)?)
}

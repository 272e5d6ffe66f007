//! A versioned byte format for expression graphs (what pickling uses). Nodes are written
//! children first, each naming its operands by earlier index, so loading is one forward pass
//! through the builders (which re-intern, and re-simplify to the very same nodes).
//!
//! Layout: magic `CRG`, format version byte, varint node count, nodes, varint root count, root
//! indices. A node is a tag byte: 0 constant (8 bytes little-endian), 1 variable (varint length,
//! UTF-8 name), 2 op (op code byte, one varint index per operand), 3 sum (varint name count,
//! names, operand index). Loading checks every length, index, op code and name, so corrupt
//! bytes give an error, never a panic or an unbounded allocation.

use crate::build;
use crate::error::{Error, Result};
use crate::expr::{Expr, Kind};
use crate::graph::Graph;
use crate::ops::Op;

const MAGIC: &[u8; 3] = b"CRG";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    put_varint(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
}

/// Serializes the graph reachable from `roots`.
pub fn encode(roots: &[Expr]) -> Vec<u8> {
    let graph = Graph::new(roots);
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    put_varint(&mut out, graph.len() as u64);
    for id in graph.ids() {
        let args = graph.args(id);
        match graph.node(id).kind() {
            Kind::Const(c) => {
                out.push(0);
                out.extend_from_slice(&c.to_le_bytes());
            }
            Kind::Var(name) => {
                out.push(1);
                put_name(&mut out, name);
            }
            Kind::Apply(op) => {
                out.push(2);
                out.push(*op as u8);
                for a in args.iter().flatten() {
                    put_varint(&mut out, a.0 as u64);
                }
            }
            Kind::Sum(over) => {
                out.push(3);
                put_varint(&mut out, over.len() as u64);
                for name in over.iter() {
                    put_name(&mut out, name);
                }
                put_varint(&mut out, args[0].expect("sum operand").0 as u64);
            }
        }
    }
    put_varint(&mut out, graph.roots.len() as u64);
    for r in &graph.roots {
        put_varint(&mut out, r.0 as u64);
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(what.to_string())
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| corrupt("unexpected end of data"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or_else(|| corrupt("unexpected end of data"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    /// A count that cannot exceed the bytes left (each counted item takes at least one byte).
    fn count(&mut self) -> Result<usize> {
        let n = self.varint()?;
        usize::try_from(n).ok().filter(|n| *n <= self.bytes.len() - self.pos).ok_or_else(|| corrupt("count larger than the data"))
    }

    fn name(&mut self) -> Result<String> {
        let len = self.count()?;
        let s = std::str::from_utf8(self.take(len)?).map_err(|_| corrupt("a name is not UTF-8"))?;
        if build::is_valid_name(s) {
            Ok(s.to_string())
        } else {
            Err(corrupt("invalid variable name"))
        }
    }

    fn index(&mut self, built: usize) -> Result<usize> {
        let i = self.varint()?;
        usize::try_from(i).ok().filter(|i| *i < built).ok_or_else(|| corrupt("operand index out of range"))
    }
}

/// Loads what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Vec<Expr>> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(3).ok() != Some(MAGIC.as_slice()) {
        return Err(corrupt("not chainrule data (bad magic)"));
    }
    let version = r.byte()?;
    if version != VERSION {
        return Err(Error::Corrupt(format!(
            "format version {version} is not supported (this build reads version {VERSION}); upgrade chainrule"
        )));
    }
    let n = r.count()?;
    let mut nodes: Vec<Expr> = Vec::with_capacity(n);
    for _ in 0..n {
        let node = match r.byte()? {
            0 => build::constant(f64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"))),
            1 => build::var(&r.name()?)?,
            2 => {
                let code = r.byte()? as usize;
                let op = *Op::ALL.get(code).ok_or_else(|| corrupt("unknown op code"))?;
                let a = r.index(nodes.len())?;
                let b = if op.arity() == 2 { Some(r.index(nodes.len())?) } else { None };
                build::apply(op, &nodes[a], b.map(|b| &nodes[b]))
            }
            3 => {
                let k = r.count()?;
                let names = (0..k).map(|_| r.name()).collect::<Result<Vec<_>>>()?;
                let a = r.index(nodes.len())?;
                build::sum_over(&nodes[a], &names)
            }
            _ => return Err(corrupt("unknown node tag")),
        };
        nodes.push(node);
    }
    let k = r.count()?;
    let roots = (0..k).map(|_| r.index(nodes.len()).map(|i| nodes[i].clone())).collect::<Result<Vec<_>>>()?;
    if r.pos != bytes.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(roots)
}

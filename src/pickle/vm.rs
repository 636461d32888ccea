//! The pickle protocol (0–5, binary opcodes) read as data.
//!
//! The opcodes build a graph of [`Node`]s in an arena instead of calling
//! anything: a global is a name checked against the caller's list, `REDUCE`
//! and `NEWOBJ` record "this callable applied to these arguments", `BUILD`
//! records the state given to an object, and a persistent id is kept as the
//! value it names. Containers are arena indices, so the mutations a pickle
//! makes after memoizing a container (`EMPTY_DICT`, `MEMOIZE`, `SETITEMS`)
//! are seen through every reference, as in Python's unpickler.
//!
//! Opcode semantics: CPython `Lib/pickle.py` and `Lib/pickletools.py`.

use crate::error::{Error, Result};
use std::collections::HashMap;

/// Index of a node in [`Pickle::nodes`].
pub type Id = usize;

/// One value of a pickle.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    None,
    Bool(bool),
    Int(i64),
    /// An integer outside i64 (two's complement, little-endian bytes).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    /// A global name (`module`, `name`), checked when read.
    Global(String, String),
    /// `func(*args)` as recorded by `REDUCE` (or `cls.__new__(cls, *args)`
    /// by `NEWOBJ`), with the `BUILD` state and the items a later
    /// `SETITEMS`/`APPENDS` added (dict and list subclasses).
    Call {
        func: Id,
        args: Vec<Id>,
        state: Option<Id>,
        items: Vec<(Id, Id)>,
        list: Vec<Id>,
    },
    /// A persistent id (torch.save's storage records).
    PersId(Id),
}

/// A read pickle: the node arena and the root.
#[derive(Debug)]
pub struct Pickle {
    pub nodes: Vec<Node>,
    pub root: Id,
    /// Bytes consumed (a torch.save stream holds several pickles in a row).
    pub len: usize,
}

/// Limits that keep a hostile file from exhausting memory.
const MAX_NODES: usize = 10_000_000;

fn err(what: &str, pos: usize, msg: impl std::fmt::Display) -> Error {
    Error::Io(format!("{what}: malformed pickle at byte {pos}: {msg}"))
}

/// Reads one pickle from the start of `data`. `allowed(module, name)`
/// decides which globals the file may name; any other is an error naming
/// it. `what` names the file in messages.
pub fn read(data: &[u8], what: &str, allowed: &dyn Fn(&str, &str) -> bool) -> Result<Pickle> {
    let mut vm = Vm {
        data,
        pos: 0,
        what,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = vm.run(allowed)?;
    Ok(Pickle {
        nodes: vm.nodes,
        root,
        len: vm.pos,
    })
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'a str,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

impl Vm<'_> {
    fn truncated(&self, need: usize) -> Error {
        Error::Io(format!(
            "{}: truncated pickle: {need} more bytes needed at byte {} of {} (the file is cut short or not a pickle)",
            self.what,
            self.pos,
            self.data.len()
        ))
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.data.len() - self.pos < n {
            return Err(self.truncated(n - (self.data.len() - self.pos)));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.truncated(1));
        };
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn len_of(&mut self, n: u64) -> Result<usize> {
        let n = usize::try_from(n).map_err(|_| self.truncated(usize::MAX))?;
        if n > self.data.len() - self.pos {
            return Err(self.truncated(n - (self.data.len() - self.pos)));
        }
        Ok(n)
    }

    fn push(&mut self, n: Node) -> Result<()> {
        if self.nodes.len() >= MAX_NODES {
            return Err(err(self.what, self.pos, "too many values"));
        }
        self.nodes.push(n);
        self.stack.push(self.nodes.len() - 1);
        Ok(())
    }

    fn pop(&mut self) -> Result<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(err(self.what, self.pos, "stack underflow"));
        }
        Ok(self.stack.pop().expect("checked"))
    }

    fn top(&self) -> Result<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(err(self.what, self.pos, "stack underflow"));
        }
        Ok(*self.stack.last().expect("checked"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let Some(m) = self.marks.pop() else {
            return Err(err(self.what, self.pos, "no MARK on the stack"));
        };
        Ok(self.stack.split_off(m))
    }

    fn string(&mut self, n: usize) -> Result<()> {
        let (what, pos) = (self.what, self.pos);
        let s = std::str::from_utf8(self.take(n)?)
            .map_err(|e| err(what, pos, format!("string is not UTF-8: {e}")))?
            .to_string();
        self.push(Node::Str(s))
    }

    fn bytes(&mut self, n: usize) -> Result<()> {
        let b = self.take(n)?.to_vec();
        self.push(Node::Bytes(b))
    }

    fn long(&mut self, n: usize) -> Result<()> {
        let b = self.take(n)?.to_vec();
        if b.len() <= 8 {
            let neg = b.last().is_some_and(|&x| x & 0x80 != 0);
            let mut a = [if neg { 0xff } else { 0 }; 8];
            a[..b.len()].copy_from_slice(&b);
            self.push(Node::Int(i64::from_le_bytes(a)))
        } else {
            self.push(Node::BigInt(b))
        }
    }

    fn global(
        &mut self,
        module: String,
        name: String,
        allowed: &dyn Fn(&str, &str) -> bool,
    ) -> Result<()> {
        if !allowed(&module, &name) {
            return Err(Error::Io(format!(
                "{}: the pickle names the global '{module}.{name}', which a network pickle does not hold; refusing the file (pickles are read as data here, nothing in them is run)",
                self.what
            )));
        }
        self.push(Node::Global(module, name))
    }

    /// The memo index of a PUT (`p` text, `q` u8, `r` u32, MEMOIZE: the
    /// next free index) or GET (`g`, `h`, `j` likewise) opcode at `at`.
    fn memo_key(&mut self, op: u8, at: usize) -> Result<u64> {
        Ok(match op {
            b'p' | b'g' => {
                let l = self.line()?;
                let name = if op == b'p' { "PUT" } else { "GET" };
                l.parse()
                    .map_err(|_| err(self.what, at, format!("bad {name} '{l}'")))?
            }
            b'q' | b'h' => self.u8()? as u64,
            b'r' | b'j' => u32::from_le_bytes(self.le()?) as u64,
            _ => self.memo.len() as u64,
        })
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<()> {
        let Some(&id) = self.memo.get(&key) else {
            return Err(err(
                self.what,
                self.pos,
                format!("memo key {key} was never stored"),
            ));
        };
        self.stack.push(id);
        Ok(())
    }

    fn add_items(&mut self, target: Id, kv: Vec<Id>) -> Result<()> {
        if !kv.len().is_multiple_of(2) {
            return Err(err(self.what, self.pos, "odd number of dict items"));
        }
        let pairs: Vec<(Id, Id)> = kv.chunks(2).map(|c| (c[0], c[1])).collect();
        match &mut self.nodes[target] {
            Node::Dict(items) => items.extend(pairs),
            Node::Call { items, .. } => items.extend(pairs),
            other => {
                let kind = kind(other);
                return Err(err(self.what, self.pos, format!("SETITEM on a {kind}")));
            }
        }
        Ok(())
    }

    fn append(&mut self, target: Id, values: Vec<Id>) -> Result<()> {
        match &mut self.nodes[target] {
            Node::List(l) => l.extend(values),
            Node::Call { list, .. } => list.extend(values),
            other => {
                let kind = kind(other);
                return Err(err(self.what, self.pos, format!("APPEND on a {kind}")));
            }
        }
        Ok(())
    }

    fn run(&mut self, allowed: &dyn Fn(&str, &str) -> bool) -> Result<Id> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(err(
                            self.what,
                            at,
                            format!("pickle protocol {v} (at most 5 exists)"),
                        ));
                    }
                }
                0x95 => {
                    self.le::<8>()?; // FRAME: a length hint only
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                b'N' => self.push(Node::None)?,
                0x88 => self.push(Node::Bool(true))?,
                0x89 => self.push(Node::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Node::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Node::Int(v as i64))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Node::Int(v as i64))?
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    self.long(n)?
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.le()?);
                    let n = self.len_of(n.max(0) as u64)?;
                    self.long(n)?
                }
                b'I' => {
                    // INT (protocol 0): "01"/"00" are booleans.
                    let l = self.line()?;
                    let node = match l.as_str() {
                        "01" => Node::Bool(true),
                        "00" => Node::Bool(false),
                        s => Node::Int(
                            s.parse()
                                .map_err(|_| err(self.what, at, format!("bad INT '{s}'")))?,
                        ),
                    };
                    self.push(node)?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Node::Float(v))?
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as u64;
                    let n = self.len_of(n)?;
                    self.string(n)?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    self.string(n)?
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = self.len_of(n)?;
                    self.string(n)?
                }
                b'T' => {
                    // BINSTRING (Python 2 str): kept as bytes-to-text.
                    let n = i32::from_le_bytes(self.le()?);
                    let n = self.len_of(n.max(0) as u64)?;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Node::Str(s))?
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Node::Str(s))?
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as u64;
                    let n = self.len_of(n)?;
                    self.bytes(n)?
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    self.bytes(n)?
                }
                0x8e | 0x96 => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = self.len_of(n)?;
                    self.bytes(n)?
                }
                b']' => self.push(Node::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.append(l, vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.append(l, items)?
                }
                b')' => self.push(Node::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items))?
                }
                b'}' => self.push(Node::Dict(Vec::new()))?,
                b'd' => {
                    let kv = self.pop_mark()?;
                    self.push(Node::Dict(Vec::new()))?;
                    let d = self.top()?;
                    self.add_items(d, kv)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.add_items(d, vec![k, v])?
                }
                b'u' => {
                    let kv = self.pop_mark()?;
                    let d = self.top()?;
                    self.add_items(d, kv)?
                }
                0x8f => self.push(Node::Set(Vec::new()))?,
                0x90 => {
                    let items = self.pop_mark()?;
                    let s = self.top()?;
                    match &mut self.nodes[s] {
                        Node::Set(v) => v.extend(items),
                        other => {
                            let kind = kind(other);
                            return Err(err(self.what, at, format!("ADDITEMS on a {kind}")));
                        }
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Node::Set(items))?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name, allowed)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(m), Node::Str(n)) = (&self.nodes[module], &self.nodes[name])
                    else {
                        return Err(err(self.what, at, "STACK_GLOBAL of non-strings"));
                    };
                    let (m, n) = (m.clone(), n.clone());
                    self.global(m, n, allowed)?
                }
                b'R' | 0x81 => {
                    // REDUCE: func(*args); NEWOBJ: cls.__new__(cls, *args).
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let Node::Tuple(args) = self.nodes[args].clone() else {
                        return Err(err(
                            self.what,
                            at,
                            "REDUCE/NEWOBJ arguments are not a tuple",
                        ));
                    };
                    self.push(Node::Call {
                        func,
                        args,
                        state: None,
                        items: Vec::new(),
                        list: Vec::new(),
                    })?
                }
                0x92 => {
                    // NEWOBJ_EX: keyword arguments are not used by these files.
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let Node::Tuple(args) = self.nodes[args].clone() else {
                        return Err(err(self.what, at, "NEWOBJ_EX arguments are not a tuple"));
                    };
                    self.push(Node::Call {
                        func,
                        args,
                        state: None,
                        items: Vec::new(),
                        list: Vec::new(),
                    })?
                }
                b'b' => {
                    let st = self.pop()?;
                    let obj = self.top()?;
                    match &mut self.nodes[obj] {
                        Node::Call { state, .. } => *state = Some(st),
                        other => {
                            let kind = kind(other);
                            return Err(err(self.what, at, format!("BUILD on a {kind}")));
                        }
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Node::PersId(pid))?
                }
                b'P' => {
                    let s = self.line()?;
                    self.push(Node::Str(s))?;
                    let pid = self.pop()?;
                    self.push(Node::PersId(pid))?
                }
                b'p' | b'q' | b'r' | 0x94 => {
                    let k = self.memo_key(op, at)?;
                    self.memo_put(k)?
                }
                b'g' | b'h' | b'j' => {
                    let k = self.memo_key(op, at)?;
                    self.memo_get(k)?
                }
                other => {
                    return Err(err(
                        self.what,
                        at,
                        format!("opcode 0x{other:02x} is not used by network pickles"),
                    ))
                }
            }
        }
    }
}

/// A short name of a node's kind for messages.
pub fn kind(n: &Node) -> &'static str {
    match n {
        Node::None => "None",
        Node::Bool(_) => "bool",
        Node::Int(_) | Node::BigInt(_) => "int",
        Node::Float(_) => "float",
        Node::Str(_) => "str",
        Node::Bytes(_) => "bytes",
        Node::List(_) => "list",
        Node::Tuple(_) => "tuple",
        Node::Dict(_) => "dict",
        Node::Set(_) => "set",
        Node::Global(..) => "global",
        Node::Call { .. } => "object",
        Node::PersId(_) => "persistent id",
    }
}

/// Globals whose `REDUCE`/`NEWOBJ` make a dict (filled by `SETITEMS`).
const DICT_CLASSES: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("dnnlib.util", "EasyDict"),
    ("dnnlib", "EasyDict"),
    ("builtins", "dict"),
];

/// A node with its pickle, for reading.
#[derive(Clone, Copy)]
pub struct Val<'a> {
    pub p: &'a Pickle,
    pub id: Id,
}

impl Pickle {
    pub fn root(&self) -> Val<'_> {
        self.val(self.root)
    }

    pub fn val(&self, id: Id) -> Val<'_> {
        Val { p: self, id }
    }
}

impl<'a> Val<'a> {
    pub fn node(&self) -> &'a Node {
        &self.p.nodes[self.id]
    }

    pub fn kind(&self) -> &'static str {
        kind(self.node())
    }

    pub fn is_none(&self) -> bool {
        matches!(self.node(), Node::None)
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match self.node() {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.node() {
            Node::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self.node() {
            Node::Int(v) => Some(*v),
            Node::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.node() {
            Node::Bool(b) => Some(*b),
            Node::Int(v) => Some(*v != 0),
            _ => None,
        }
    }

    /// An int or float.
    pub fn as_f64(&self) -> Option<f64> {
        match self.node() {
            Node::Int(v) => Some(*v as f64),
            Node::Float(v) => Some(*v),
            Node::Bool(b) => Some(*b as u8 as f64),
            _ => None,
        }
    }

    /// `(module, name)` of a global.
    pub fn global(&self) -> Option<(&'a str, &'a str)> {
        match self.node() {
            Node::Global(m, n) => Some((m, n)),
            _ => None,
        }
    }

    /// A recorded call: the global called and its arguments.
    pub fn call(&self) -> Option<((&'a str, &'a str), Vec<Val<'a>>)> {
        match self.node() {
            Node::Call { func, args, .. } => {
                let f = self.p.val(*func).global()?;
                Some((f, args.iter().map(|&a| self.p.val(a)).collect()))
            }
            _ => None,
        }
    }

    /// The `BUILD` state of a recorded call.
    pub fn state(&self) -> Option<Val<'a>> {
        match self.node() {
            Node::Call { state, .. } => state.map(|s| self.p.val(s)),
            _ => None,
        }
    }

    /// Items of a dict, or of a dict subclass (`OrderedDict`, `EasyDict`).
    pub fn items(&self) -> Option<Vec<(Val<'a>, Val<'a>)>> {
        let pairs = match self.node() {
            Node::Dict(items) => items,
            Node::Call { items, .. } => {
                let (f, _) = self.call()?;
                if !DICT_CLASSES.contains(&f) {
                    return None;
                }
                items
            }
            _ => return None,
        };
        Some(
            pairs
                .iter()
                .map(|&(k, v)| (self.p.val(k), self.p.val(v)))
                .collect(),
        )
    }

    /// The value under the string key `key` of a dict (last one wins).
    pub fn get(&self, key: &str) -> Option<Val<'a>> {
        self.items()?
            .into_iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Elements of a list or tuple.
    pub fn seq(&self) -> Option<Vec<Val<'a>>> {
        match self.node() {
            Node::List(v) | Node::Tuple(v) => Some(v.iter().map(|&i| self.p.val(i)).collect()),
            _ => None,
        }
    }
}

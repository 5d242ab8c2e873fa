//! Kafka's wire primitives, both ways, for the few fixed request versions the doctor
//! sends (see `messages`). Hand-written on purpose, not `kafka-protocol`'s decoders:
//! those pre-allocate arrays from the count a (hostile) broker sends
//! (`Vec::with_capacity(n)` in kafka-protocol 0.18 `types.rs`), and a 10-byte frame
//! asking for gigabytes aborts the process. Here every count is checked against the
//! bytes left before anything is allocated, every read is checked, and a frame is
//! at most [`MAX_FRAME`] bytes: a hostile frame is one error line, never a panic, and
//! memory stays within the frame's size.

use std::fmt;

/// The largest response frame read: the probes name their topics and groups, so real
/// answers are a few KiB; a bigger size prefix is refused before anything is read.
pub const MAX_FRAME: usize = 1 << 20;

/// A response that does not decode: what was being read and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed response: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

pub type Result<T> = std::result::Result<T, Malformed>;

fn malformed<T>(what: impl Into<String>) -> Result<T> {
    Err(Malformed(what.into()))
}

/// Builds a request body (or header) in a growing buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.buf.push(v as u8);
        self
    }
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(u8::from(v));
        self
    }
    /// STRING: i16 length then UTF-8. Our strings are names we chose (short).
    pub fn string(&mut self, s: &str) -> &mut Self {
        let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
        self.i16(len);
        self.buf
            .extend_from_slice(&s.as_bytes()[..usize::try_from(len).unwrap_or(0)]);
        self
    }
    pub fn nullable_string(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    /// BYTES: i32 length then the bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
        self.buf.extend_from_slice(b);
        self
    }
    /// ARRAY: i32 count (the elements follow).
    pub fn array_len(&mut self, n: usize) -> &mut Self {
        self.i32(i32::try_from(n).unwrap_or(i32::MAX))
    }
    pub fn uvarint(&mut self, mut v: u32) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }
    /// No tagged fields (flexible versions).
    pub fn no_tags(&mut self) -> &mut Self {
        self.uvarint(0)
    }
}

/// Reads a response body; every method checks the bytes left first.
pub struct Reader<'a> {
    buf: &'a [u8],
    /// What is being read, for the error.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return malformed(format!(
                "{} is truncated ({n} bytes needed, {} left)",
                self.what,
                self.buf.len()
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    pub fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.i8()? != 0)
    }

    fn utf8(&self, b: &'a [u8]) -> Result<&'a str> {
        std::str::from_utf8(b)
            .or_else(|_| malformed(format!("{}: a string is not UTF-8", self.what)))
    }

    /// STRING or NULLABLE_STRING (i16 length, -1 null).
    pub fn nullable_string(&mut self) -> Result<Option<&'a str>> {
        let len = self.i16()?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(len) = usize::try_from(len) else {
            return malformed(format!("{}: string length {len}", self.what));
        };
        let b = self.take(len)?;
        self.utf8(b).map(Some)
    }
    pub fn string(&mut self) -> Result<&'a str> {
        match self.nullable_string()? {
            Some(s) => Ok(s),
            None => malformed(format!("{}: a required string is null", self.what)),
        }
    }
    /// BYTES or NULLABLE_BYTES (i32 length, -1 null).
    pub fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(len) = usize::try_from(len) else {
            return malformed(format!("{}: bytes length {len}", self.what));
        };
        self.take(len).map(Some)
    }

    /// An ARRAY count (i32, -1 null = empty), refused when the elements of at least
    /// `min_element` bytes each cannot fit in what is left: the count never sizes an
    /// allocation.
    pub fn array_len(&mut self, min_element: usize) -> Result<usize> {
        let n = self.i32()?;
        if n == -1 {
            return Ok(0);
        }
        self.checked_count(i64::from(n), min_element)
    }

    fn checked_count(&self, n: i64, min_element: usize) -> Result<usize> {
        let Ok(n) = usize::try_from(n) else {
            return malformed(format!("{}: array count {n}", self.what));
        };
        if n.saturating_mul(min_element.max(1)) > self.buf.len() {
            return malformed(format!(
                "{}: array of {n} elements in {} bytes",
                self.what,
                self.buf.len()
            ));
        }
        Ok(n)
    }

    /// UNSIGNED_VARINT, at most 5 bytes.
    pub fn uvarint(&mut self) -> Result<u32> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.i8()? as u8;
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        malformed(format!("{}: varint longer than 5 bytes", self.what))
    }

    /// COMPACT_NULLABLE_STRING (uvarint length + 1, 0 null).
    pub fn compact_nullable_string(&mut self) -> Result<Option<&'a str>> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let b = self.take((n - 1) as usize)?;
        self.utf8(b).map(Some)
    }
    pub fn compact_string(&mut self) -> Result<&'a str> {
        match self.compact_nullable_string()? {
            Some(s) => Ok(s),
            None => malformed(format!("{}: a required string is null", self.what)),
        }
    }
    /// COMPACT_ARRAY count (uvarint count + 1, 0 null = empty), bounded like
    /// [`Reader::array_len`].
    pub fn compact_array_len(&mut self, min_element: usize) -> Result<usize> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(0);
        }
        self.checked_count(i64::from(n) - 1, min_element)
    }
    /// TAGGED_FIELDS: skipped (none is read).
    pub fn skip_tags(&mut self) -> Result<()> {
        let n = self.uvarint()?;
        let n = self.checked_count(i64::from(n), 2)?;
        for _ in 0..n {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.take(size as usize)?;
        }
        Ok(())
    }

    /// The whole body was read: bytes left over mean we misread it.
    pub fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            malformed(format!("{}: {} bytes left over", self.what, self.buf.len()))
        }
    }
}

/// A request frame: i32 size, request header (v1, or v2 for flexible versions: an
/// empty tagged-field section), body.
pub fn frame(
    api_key: i16,
    version: i16,
    flexible: bool,
    correlation_id: i32,
    client_id: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut h = Writer::default();
    h.i32(0)
        .i16(api_key)
        .i16(version)
        .i32(correlation_id)
        .nullable_string(Some(client_id));
    if flexible {
        h.no_tags();
    }
    h.buf.extend_from_slice(body);
    let size = i32::try_from(h.buf.len() - 4).unwrap_or(i32::MAX);
    h.buf[..4].copy_from_slice(&size.to_be_bytes());
    h.buf
}

/// The size prefix of a response frame, checked against [`MAX_FRAME`].
pub fn frame_size(prefix: [u8; 4]) -> Result<usize> {
    let n = i32::from_be_bytes(prefix);
    match usize::try_from(n) {
        Ok(n) if (4..=MAX_FRAME).contains(&n) => Ok(n),
        _ => malformed(format!(
            "frame size {n} (expected 4 to {MAX_FRAME} bytes; is this a Kafka listener?)"
        )),
    }
}

/// The body of a response frame after its header (v0: correlation id; v1 for flexible
/// versions: plus tagged fields), once the correlation id is the one sent.
pub fn response_body(frame: &[u8], correlation_id: i32, flexible_header: bool) -> Result<&[u8]> {
    let mut r = Reader::new(frame, "response header");
    let got = r.i32()?;
    if got != correlation_id {
        return malformed(format!("correlation id {got}, expected {correlation_id}"));
    }
    if flexible_header {
        r.skip_tags()?;
    }
    Ok(r.buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_never_outrun_the_bytes() {
        // A count of 2^31-1 elements in 4 bytes: refused, nothing allocated.
        let mut b = Writer::default();
        b.i32(i32::MAX).i32(0);
        let mut r = Reader::new(&b.buf, "test");
        assert!(r.array_len(4).is_err());
        let mut b = Writer::default();
        b.uvarint(u32::MAX).i32(0);
        let mut r = Reader::new(&b.buf, "test");
        assert!(r.compact_array_len(1).is_err());
        // Null arrays are empty.
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff], "test");
        assert_eq!(r.array_len(1), Ok(0));
    }

    #[test]
    fn strings_round_trip_and_refuse_garbage() {
        let mut w = Writer::default();
        w.string("héllo").nullable_string(None).uvarint(300);
        let mut r = Reader::new(&w.buf, "test");
        assert_eq!(r.string(), Ok("héllo"));
        assert_eq!(r.nullable_string(), Ok(None));
        assert_eq!(r.uvarint(), Ok(300));
        r.finish().unwrap();
        let mut r = Reader::new(&[0, 2, 0xff, 0xfe], "test");
        assert!(r.string().is_err());
        let mut r = Reader::new(&[0xff, 0xfe], "test");
        assert!(r.string().is_err());
        let mut r = Reader::new(&[0xff; 6], "test");
        assert!(r.uvarint().is_err());
    }

    #[test]
    fn frames() {
        let f = frame(18, 0, false, 7, "ksql-msk", &[]);
        assert_eq!(&f[..4], &(f.len() as i32 - 4).to_be_bytes());
        assert_eq!(&f[4..8], &[0, 18, 0, 0]);
        assert!(frame_size(0x1603_0100u32.to_be_bytes()).is_err());
        assert!(frame_size((-1i32).to_be_bytes()).is_err());
        assert_eq!(frame_size(16i32.to_be_bytes()), Ok(16));
        assert!(response_body(&[0, 0, 0, 8], 7, false).is_err());
        assert_eq!(response_body(&[0, 0, 0, 7, 1], 7, false), Ok(&[1u8][..]));
    }
}

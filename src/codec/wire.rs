//! Wire primitives shared by every packet (MQTT 5 §1.5): integers, variable byte
//! integers, UTF-8 strings, binary data; a bounds-checked reader over a frozen frame and
//! writers straight into a `BytesMut`.

use bytes::{BufMut, Bytes, BytesMut};

use super::{ByteStr, DecodeError, EncodeError};

/// Largest value a variable byte integer can hold (§1.5.5).
pub(crate) const VAR_INT_MAX: u32 = 268_435_455;

/// Reads the fields of one frame. Slices it hands out (`bytes`, `bytestr`, `binary`)
/// share the frame's allocation.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

const TRUNCATED: DecodeError = DecodeError::Malformed("packet truncated");

impl<'a> Reader<'a> {
    /// A reader over `buf[start..]`.
    pub(crate) fn new(buf: &'a Bytes, start: usize) -> Self {
        Self {
            buf,
            pos: start,
            end: buf.len(),
        }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    /// Splits off a reader over the next `len` bytes (a property list), advancing past them.
    pub(crate) fn sub(&mut self, len: usize) -> Result<Reader<'a>, DecodeError> {
        if self.remaining() < len {
            return Err(TRUNCATED);
        }
        let sub = Reader {
            buf: self.buf,
            pos: self.pos,
            end: self.pos + len,
        };
        self.pos += len;
        Ok(sub)
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        if self.pos < self.end {
            Some(self.buf[self.pos])
        } else {
            None
        }
    }

    /// Advances past `n` bytes the caller has already looked at with `peek`.
    #[inline]
    pub(crate) fn skip(&mut self, n: usize) {
        debug_assert!(self.remaining() >= n);
        self.pos += n;
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.pos >= self.end {
            return Err(TRUNCATED);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.remaining() < 2 {
            return Err(TRUNCATED);
        }
        let v = u16::from_be_bytes([self.buf[self.pos], self.buf[self.pos + 1]]);
        self.pos += 2;
        Ok(v)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let s = self.slice(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// A variable byte integer (§1.5.5): at most four bytes, minimally encoded.
    pub(crate) fn var_int(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // [MQTT-1.5.5-1] the minimum number of bytes: no trailing zero group.
                if i > 0 && b == 0 {
                    return Err(DecodeError::Malformed(
                        "variable byte integer not minimally encoded",
                    ));
                }
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed(
            "variable byte integer longer than 4 bytes",
        ))
    }

    #[inline]
    pub(crate) fn slice(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < len {
            return Err(TRUNCATED);
        }
        let buf: &'a Bytes = self.buf;
        let s = &buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    /// The next `len` bytes as a slice of the frame (a refcount, no copy).
    #[inline]
    pub(crate) fn bytes(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < len {
            return Err(TRUNCATED);
        }
        let b = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(b)
    }

    /// Binary data (§1.5.6): two-byte length, then bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()? as usize;
        self.bytes(len)
    }

    /// A UTF-8 encoded string (§1.5.4), borrowed from the frame.
    #[inline]
    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u16()? as usize;
        let raw = self.slice(len)?;
        check_utf8(raw)
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    /// A UTF-8 encoded string as a slice of the frame (topic names).
    #[inline]
    pub(crate) fn bytestr(&mut self) -> Result<ByteStr, DecodeError> {
        let len = self.u16()? as usize;
        if self.remaining() < len {
            return Err(TRUNCATED);
        }
        check_utf8(&self.buf[self.pos..self.pos + len])?;
        let b = self.bytes(len)?;
        // SAFETY: checked just above.
        Ok(unsafe { ByteStr::from_utf8_unchecked(b) })
    }
}

impl Reader<'_> {
    /// Where the next field starts in the frame.
    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// A PUBLISH topic name as a slice of the frame: UTF-8, no U+0000, no wildcards
    /// ([MQTT-3.3.2-2]); empty is left to the caller (it may stand for a topic alias).
    /// ASCII topics, the common case, are checked in one vectorisable pass.
    #[inline]
    pub(crate) fn topic(&mut self) -> Result<ByteStr, DecodeError> {
        let len = self.u16()? as usize;
        if self.remaining() < len {
            return Err(TRUNCATED);
        }
        let raw = &self.buf[self.pos..self.pos + len];
        let (mut high, mut special) = (false, false);
        for &b in raw {
            high |= b >= 0x80;
            special |= b == 0 || b == b'+' || b == b'#';
        }
        if high {
            check_utf8(raw)?;
        }
        if special {
            if raw.contains(&0) {
                return Err(DecodeError::Malformed("string contains U+0000"));
            }
            return Err(DecodeError::TopicNameInvalid("wildcard in topic name"));
        }
        let b = self.bytes(len)?;
        // SAFETY: checked above (ASCII, or `check_utf8`).
        Ok(unsafe { ByteStr::from_utf8_unchecked(b) })
    }
}

/// Well-formed UTF-8 without U+0000 ([MQTT-1.5.4-1], [MQTT-1.5.4-2]). Surrogates are
/// rejected by `from_utf8` already.
#[inline]
pub(crate) fn check_utf8(raw: &[u8]) -> Result<&str, DecodeError> {
    // U+0000 is the only code point whose encoding contains a zero byte.
    if raw.is_ascii() {
        if raw.contains(&0) {
            return Err(DecodeError::Malformed("string contains U+0000"));
        }
        // SAFETY: ASCII is UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(raw) });
    }
    let s = std::str::from_utf8(raw).map_err(|_| DecodeError::Malformed("invalid UTF-8 string"))?;
    if raw.contains(&0) {
        return Err(DecodeError::Malformed("string contains U+0000"));
    }
    Ok(s)
}

#[inline]
pub(crate) fn var_int_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

#[inline]
pub(crate) fn write_var_int(out: &mut BytesMut, mut v: usize) {
    debug_assert!(v <= VAR_INT_MAX as usize);
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            return;
        }
    }
}

/// Length prefix plus bytes of a string or binary field.
#[inline]
pub(crate) fn field_len(data: &[u8]) -> usize {
    2 + data.len()
}

/// Binary data or a UTF-8 string's bytes with their two-byte length (§1.5.4, §1.5.6).
#[inline]
pub(crate) fn write_binary(out: &mut BytesMut, data: &[u8]) -> Result<(), EncodeError> {
    if data.len() > u16::MAX as usize {
        return Err(EncodeError::StringTooLong(data.len()));
    }
    out.put_u16(data.len() as u16);
    out.put_slice(data);
    Ok(())
}

/// A UTF-8 string must not contain U+0000 ([MQTT-1.5.4-2]).
#[inline]
pub(crate) fn write_str(out: &mut BytesMut, s: &str) -> Result<(), EncodeError> {
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::Invalid("string contains U+0000"));
    }
    write_binary(out, s.as_bytes())
}

/// The fixed header: first byte and remaining length.
#[inline]
pub(crate) fn write_header(
    out: &mut BytesMut,
    first: u8,
    remaining: usize,
) -> Result<(), EncodeError> {
    if remaining > VAR_INT_MAX as usize {
        return Err(EncodeError::PacketTooLarge {
            size: remaining,
            max: VAR_INT_MAX,
        });
    }
    out.reserve(1 + var_int_len(remaining) + remaining);
    out.put_u8(first);
    write_var_int(out, remaining);
    Ok(())
}

/// Packet identifier that must be non-zero (§2.2.1).
#[inline]
pub(crate) fn read_pkid(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    let pkid = r.u16()?;
    if pkid == 0 {
        return Err(DecodeError::Protocol("packet identifier 0"));
    }
    Ok(pkid)
}

#[inline]
pub(crate) fn check_pkid(pkid: u16) -> Result<(), EncodeError> {
    if pkid == 0 {
        return Err(EncodeError::Invalid("packet identifier 0"));
    }
    Ok(())
}

/// No bytes may follow the declared content (§4.13: a malformed packet).
#[inline]
pub(crate) fn expect_end(r: &Reader<'_>) -> Result<(), DecodeError> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Malformed(
            "trailing bytes after packet content",
        ))
    }
}

//! Timestamps: parsed from what flow files write, printed as EVE and STIX want them.

use std::fmt;

/// A point in time: microseconds since 1970-01-01T00:00:00Z (UTC; leap seconds ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

const MICROS: i64 = 1_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Components of a civil date-time, checked.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

impl Civil {
    fn to_timestamp(&self) -> Option<Timestamp> {
        let valid = (1..=12).contains(&self.month)
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 61
            && (1..=9999).contains(&self.year);
        if !valid {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Some(Timestamp(secs * MICROS + i64::from(self.micros)))
    }
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Fraction digits as microseconds (`"5"` is 500000); extra digits are truncated.
fn fraction_micros(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = s.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    digits.parse().ok()
}

impl Timestamp {
    /// Whole seconds since the epoch.
    pub fn from_secs(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(MICROS))
    }

    /// Parses the timestamp forms flow files use; `None` if `text` is none of them:
    ///
    /// * epoch seconds with an optional fraction (Zeek `ts`: `1331901000.000000`);
    /// * RFC 3339 / ISO 8601 in UTC or with an offset (`2017-07-07T15:30:00.123Z`,
    ///   `2017-07-07T15:30:00+0200`, `2017-07-07 15:30:00`);
    /// * CICFlowMeter's day-first `d/m/Y H:M[:S]` with an optional `AM`/`PM`
    ///   (`3/7/2017 8:55:58`, `7/7/2017 3:30:00 PM`), taken as UTC.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        if text.contains('/') {
            return Self::parse_day_first(text);
        }
        if text.contains('-') && text.len() >= 10 && !text.starts_with('-') {
            return Self::parse_iso(text);
        }
        let (int, frac) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let secs: i64 = num(int)?;
        let micros = match frac {
            Some(f) => i64::from(fraction_micros(f)?),
            None => 0,
        };
        // Beyond year 9999 is not a flow timestamp.
        if secs > 253_402_300_799 {
            return None;
        }
        Some(Timestamp(secs * MICROS + micros))
    }

    fn parse_iso(text: &str) -> Option<Timestamp> {
        let date = text.get(..10)?;
        let rest = text.get(10..)?;
        let mut parts = date.split('-');
        let year: i64 = num(parts.next()?)?;
        let month: u32 = num(parts.next()?)?;
        let day: u32 = num(parts.next()?)?;
        let (time, offset_secs) = if rest.is_empty() {
            ("00:00:00", 0)
        } else {
            let rest = rest.strip_prefix(['T', 't', ' '])?;
            let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
                Some(p) => (rest.get(..p)?, rest.get(p..)?),
                None => (rest, ""),
            };
            let offset_secs: i64 = match offset {
                "" | "Z" | "z" => 0,
                o => {
                    let sign = if o.starts_with('-') { -1 } else { 1 };
                    let digits: String = o.get(1..)?.chars().filter(|&c| c != ':').collect();
                    if digits.len() != 4 {
                        return None;
                    }
                    let h: i64 = num(digits.get(..2)?)?;
                    let m: i64 = num(digits.get(2..)?)?;
                    sign * (h * 3600 + m * 60)
                }
            };
            (time, offset_secs)
        };
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (time, None),
        };
        let mut t = hms.split(':');
        let hour: u32 = num(t.next()?)?;
        let minute: u32 = num(t.next()?)?;
        let second: u32 = match t.next() {
            Some(s) => num(s)?,
            None => 0,
        };
        if t.next().is_some() {
            return None;
        }
        let micros = match frac {
            Some(f) => fraction_micros(f)?,
            None => 0,
        };
        let local = Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        }
        .to_timestamp()?;
        Some(Timestamp(local.0 - offset_secs * MICROS))
    }

    fn parse_day_first(text: &str) -> Option<Timestamp> {
        let mut words = text.split_whitespace();
        let date = words.next()?;
        let time = words.next().unwrap_or("0:00");
        let meridiem = words.next();
        if words.next().is_some() {
            return None;
        }
        let mut d = date.split('/');
        let day: u32 = num(d.next()?)?;
        let month: u32 = num(d.next()?)?;
        let year: i64 = num(d.next()?)?;
        if d.next().is_some() {
            return None;
        }
        let mut t = time.split(':');
        let mut hour: u32 = num(t.next()?)?;
        let minute: u32 = num(t.next()?)?;
        let second: u32 = match t.next() {
            Some(s) => num(s)?,
            None => 0,
        };
        match meridiem.map(str::to_ascii_uppercase).as_deref() {
            None => {}
            Some("AM") if (1..=12).contains(&hour) => hour %= 12,
            Some("PM") if (1..=12).contains(&hour) => hour = hour % 12 + 12,
            Some(_) => return None,
        }
        Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros: 0,
        }
        .to_timestamp()
    }

    fn civil(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let secs = self.0.div_euclid(MICROS);
        let micros = self.0.rem_euclid(MICROS) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, sod / 3600, sod / 60 % 60, sod % 60, micros)
    }

    /// Appends [`Timestamp::eve`]'s text to `out`, without allocating for years 0 to 9999.
    pub fn write_eve(self, out: &mut Vec<u8>) {
        let (y, mo, d, h, mi, s, us) = self.civil();
        if !(0..=9999).contains(&y) {
            out.extend_from_slice(self.eve().as_bytes());
            return;
        }
        /// Appends the last `N` decimal digits of `v`.
        fn digits<const N: usize>(out: &mut Vec<u8>, mut v: u32) {
            let mut buf = [b'0'; N];
            for b in buf.iter_mut().rev() {
                *b = b'0' + (v % 10) as u8;
                v /= 10;
            }
            out.extend_from_slice(&buf);
        }
        digits::<4>(out, y as u32);
        for (separator, value) in [(b'-', mo), (b'-', d), (b'T', h), (b':', mi), (b':', s)] {
            out.push(separator);
            digits::<2>(out, value);
        }
        out.push(b'.');
        digits::<6>(out, us);
        out.extend_from_slice(b"+0000");
    }

    /// Suricata EVE form: `2017-07-07T15:30:00.000000+0000`.
    pub fn eve(self) -> String {
        let (y, mo, d, h, mi, s, us) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}+0000")
    }

    /// RFC 3339 in UTC with milliseconds, as STIX 2.1 wants: `2017-07-07T15:30:00.000Z`.
    pub fn rfc3339_millis(self) -> String {
        let (y, mo, d, h, mi, s, us) = self.civil();
        format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
            us / 1000
        )
    }

    /// RFC 3339 in UTC with microseconds (TAXII `date_added`): `2017-07-07T15:30:00.000000Z`.
    pub fn rfc3339_micros(self) -> String {
        let (y, mo, d, h, mi, s, us) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z")
    }

    /// The date alone: `2017-07-07`.
    pub fn date(self) -> String {
        let (y, mo, d, ..) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}")
    }

    /// Whole seconds since the epoch.
    pub fn secs(self) -> i64 {
        self.0.div_euclid(MICROS)
    }

    /// This time plus `secs` seconds.
    pub fn plus_secs(self, secs: u64) -> Timestamp {
        Timestamp(self.0.saturating_add((secs as i64).saturating_mul(MICROS)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339_micros())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339_micros())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a timestamp, found '{s}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str, want: Option<&str>) {
        assert_eq!(
            Timestamp::parse(text)
                .map(Timestamp::rfc3339_micros)
                .as_deref(),
            want,
            "{text}"
        );
    }

    #[test]
    fn forms() {
        check("1331901000.000000", Some("2012-03-16T12:30:00.000000Z"));
        check("1331901000.5", Some("2012-03-16T12:30:00.500000Z"));
        check("0", Some("1970-01-01T00:00:00.000000Z"));
        check(
            "2017-07-07T15:30:00.123Z",
            Some("2017-07-07T15:30:00.123000Z"),
        );
        check(
            "2017-07-07T15:30:00+0200",
            Some("2017-07-07T13:30:00.000000Z"),
        );
        check(
            "2017-07-07T15:30:00.000000+0000",
            Some("2017-07-07T15:30:00.000000Z"),
        );
        check("2017-07-07 15:30:00", Some("2017-07-07T15:30:00.000000Z"));
        check("3/7/2017 8:55:58", Some("2017-07-03T08:55:58.000000Z"));
        check("7/7/2017 3:30", Some("2017-07-07T03:30:00.000000Z"));
        check("7/7/2017 3:30:00 PM", Some("2017-07-07T15:30:00.000000Z"));
        check("7/7/2017 12:05:00 AM", Some("2017-07-07T00:05:00.000000Z"));
        check("29/2/2016 0:00", Some("2016-02-29T00:00:00.000000Z"));
        for bad in [
            "",
            "-",
            "abc",
            "29/2/2017 0:00",
            "1/13/2017 1:00",
            "2017-02-30T00:00:00Z",
            "1.2.3",
            "7/7/2017 13:00 PM",
            "99999999999999999999",
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn formats() {
        let t = Timestamp::parse("2017-07-07T15:30:00.123456Z").unwrap();
        assert_eq!(t.eve(), "2017-07-07T15:30:00.123456+0000");
        assert_eq!(t.rfc3339_millis(), "2017-07-07T15:30:00.123Z");
        assert_eq!(t.date(), "2017-07-07");
        assert_eq!(t.plus_secs(60).secs(), t.secs() + 60);
    }

    proptest! {
        #[test]
        fn round_trip(micros in -62_000_000_000_000_000i64..253_000_000_000_000_000) {
            let t = Timestamp(micros);
            prop_assert_eq!(Timestamp::parse(&t.rfc3339_micros()), Some(t));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = Timestamp::parse(&s);
        }
    }
}

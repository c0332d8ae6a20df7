//! `strftime_now(format)`: the current date and time formatted like Python's
//! `datetime.strftime` in the C locale (what transformers exposes to templates).

use std::time::{SystemTime, UNIX_EPOCH};

/// A calendar date and time of day (proleptic Gregorian, no time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl DateTime {
    /// `None` if any field is out of range (month 1–12, day within the month,
    /// hour < 24, minute < 60, second < 60).
    pub fn new(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Option<DateTime> {
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then_some(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS` (a space may stand for the `T`).
    pub fn parse(text: &str) -> Option<DateTime> {
        let (date, time) = text.split_once(['T', ' '])?;
        let mut d = date.splitn(3, '-');
        let mut t = time.splitn(3, ':');
        DateTime::new(
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
        )
    }

    /// Seconds since 1970-01-01T00:00:00 UTC, as UTC.
    pub fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }

    /// The current time in UTC. (Python's `datetime.now()` uses the local zone; a
    /// server's zone is not a property of the request, so UTC is the stable choice.)
    pub fn now_utc() -> DateTime {
        let secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        DateTime::from_unix(secs)
    }

    fn days(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// 0 = Sunday.
    fn weekday(&self) -> u32 {
        (self.days() + 4).rem_euclid(7) as u32
    }

    /// 1-based day of the year.
    fn ordinal(&self) -> u32 {
        (self.days() - days_from_civil(self.year, 1, 1) + 1) as u32
    }

    /// Formats like C `strftime` in the C locale with glibc's `-` (no padding) and
    /// `_` (space padding) flags; unknown directives are copied through.
    pub fn strftime(&self, format: &str) -> String {
        let mut out = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let flag = match chars.peek() {
                Some(&f @ ('-' | '_' | '0')) => {
                    chars.next();
                    Some(f)
                }
                _ => None,
            };
            let Some(spec) = chars.next() else {
                out.push('%');
                if let Some(f) = flag {
                    out.push(f);
                }
                break;
            };
            let num = |out: &mut String, n: i64, width: usize, pad: char| {
                let pad = match flag {
                    Some('-') => return out.push_str(&n.to_string()),
                    Some('_') => ' ',
                    Some('0') => '0',
                    _ => pad,
                };
                let digits = n.unsigned_abs().to_string();
                if n < 0 {
                    out.push('-');
                }
                for _ in digits.len()..width {
                    out.push(pad);
                }
                out.push_str(&digits);
            };
            let hour12 = match self.hour % 12 {
                0 => 12,
                h => h,
            };
            let weekday = self.weekday();
            match spec {
                'a' => out.push_str(&WEEKDAYS[weekday as usize][..3]),
                'A' => out.push_str(WEEKDAYS[weekday as usize]),
                'b' | 'h' => out.push_str(&MONTHS[self.month as usize - 1][..3]),
                'B' => out.push_str(MONTHS[self.month as usize - 1]),
                'c' => out.push_str(&self.strftime("%a %b %e %H:%M:%S %Y")),
                'C' => num(&mut out, i64::from(self.year).div_euclid(100), 2, '0'),
                'd' => num(&mut out, self.day.into(), 2, '0'),
                'D' | 'x' => out.push_str(&self.strftime("%m/%d/%y")),
                'e' => num(&mut out, self.day.into(), 2, ' '),
                'F' => out.push_str(&self.strftime("%Y-%m-%d")),
                'H' => num(&mut out, self.hour.into(), 2, '0'),
                'I' => num(&mut out, hour12.into(), 2, '0'),
                'j' => num(&mut out, self.ordinal().into(), 3, '0'),
                'k' => num(&mut out, self.hour.into(), 2, ' '),
                'l' => num(&mut out, hour12.into(), 2, ' '),
                'm' => num(&mut out, self.month.into(), 2, '0'),
                'M' => num(&mut out, self.minute.into(), 2, '0'),
                'n' => out.push('\n'),
                'p' => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
                'P' => out.push_str(if self.hour < 12 { "am" } else { "pm" }),
                'r' => out.push_str(&self.strftime("%I:%M:%S %p")),
                'R' => out.push_str(&self.strftime("%H:%M")),
                'S' => num(&mut out, self.second.into(), 2, '0'),
                't' => out.push('\t'),
                'T' | 'X' => out.push_str(&self.strftime("%H:%M:%S")),
                'u' => num(
                    &mut out,
                    (if weekday == 0 { 7 } else { weekday }).into(),
                    1,
                    '0',
                ),
                'w' => num(&mut out, weekday.into(), 1, '0'),
                // Week of the year, weeks starting on Sunday (U) or Monday (W).
                'U' => num(
                    &mut out,
                    ((self.ordinal() + 6 - weekday) / 7).into(),
                    2,
                    '0',
                ),
                'W' => num(
                    &mut out,
                    ((self.ordinal() + 6 - (weekday + 6) % 7) / 7).into(),
                    2,
                    '0',
                ),
                'y' => num(&mut out, i64::from(self.year).rem_euclid(100), 2, '0'),
                'Y' => num(&mut out, self.year.into(), 1, '0'),
                // A naive datetime has no zone: Python prints nothing for these.
                'z' | 'Z' => {}
                '%' => out.push('%'),
                other => {
                    out.push('%');
                    if let Some(f) = flag {
                        out.push(f);
                    }
                    out.push(other);
                }
            }
        }
        out
    }
}

fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_round_trip_and_weekdays() {
        // 2025-03-07 is a Friday; 2000-02-29 a Tuesday; 1969-12-31 a Wednesday.
        let d = DateTime::from_unix(1_741_356_309);
        assert_eq!(d, DateTime::new(2025, 3, 7, 14, 5, 9).unwrap());
        assert_eq!(d.strftime("%A %a %u %w"), "Friday Fri 5 5");
        let leap = DateTime::parse("2000-02-29T00:00:00").unwrap();
        assert_eq!(leap.strftime("%a %j"), "Tue 060");
        assert_eq!(
            DateTime::from_unix(-1).strftime("%F %T %a"),
            "1969-12-31 23:59:59 Wed"
        );
        assert!(DateTime::new(2023, 2, 29, 0, 0, 0).is_none());
    }

    #[test]
    fn formats_like_python_c_locale() {
        let d = DateTime::parse("2025-03-07 14:05:09").unwrap();
        assert_eq!(d.strftime("%Y-%m-%d"), "2025-03-07");
        assert_eq!(d.strftime("%B %d, %Y"), "March 07, 2025");
        assert_eq!(d.strftime("%d %b %Y"), "07 Mar 2025");
        assert_eq!(d.strftime("%c"), "Fri Mar  7 14:05:09 2025");
        assert_eq!(
            d.strftime("%I:%M %p|%-d|%e|%y|%%|%Q|%U|%W"),
            "02:05 PM|7| 7|25|%|%Q|09|09"
        );
    }
}

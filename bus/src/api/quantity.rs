//! Kubernetes resource quantities (`500m`, `1.5`, `128Mi`, `1e3`), parsed exactly into milli-units.

/// A parsed quantity, kept as thousandths of a unit (CPU millicores, milli-bytes) rounded up, as Kubernetes does
/// when it compares quantities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    milli: i128,
}

impl Quantity {
    /// Parses Kubernetes' quantity syntax: a signed decimal number followed by an optional binary suffix
    /// (Ki Mi Gi Ti Pi Ei), decimal suffix (n u m k M G T P E) or exponent (e3, E-2).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = || {
            format!("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {raw:?})")
        };
        let s = raw.trim();
        if s.is_empty() || s.len() > 64 {
            return Err(bad());
        }
        let (negative, s) = match s.as_bytes()[0] {
            b'+' => (false, &s[1..]),
            b'-' => (true, &s[1..]),
            _ => (false, s),
        };
        let number_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        // Value = digits * 10^-frac_len * multiplier; keep it as a rational digits * num / den.
        let digits: String = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let digits: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| bad())?
        };
        let mut num: i128 = 1000; // milli-units
        let mut den: i128 = 10i128.checked_pow(frac_part.len() as u32).ok_or_else(bad)?;
        let (mul_num, mul_den) = suffix_factor(suffix).ok_or_else(bad)?;
        num = num.checked_mul(mul_num).ok_or_else(bad)?;
        den = den.checked_mul(mul_den).ok_or_else(bad)?;
        let product = digits.checked_mul(num).ok_or_else(bad)?;
        // Round up to the next milli-unit, as Kubernetes does.
        let milli = product.checked_add(den - 1).ok_or_else(bad)? / den;
        Ok(Self {
            milli: if negative { -milli } else { milli },
        })
    }

    /// The quantity in thousandths (e.g. CPU millicores), rounded up.
    pub fn milli(&self) -> i128 {
        self.milli
    }

    /// The quantity in whole units (e.g. bytes), rounded up.
    pub fn units(&self) -> i128 {
        if self.milli >= 0 {
            (self.milli + 999) / 1000
        } else {
            self.milli / 1000
        }
    }
}

/// The factor of a suffix as (numerator, denominator).
fn suffix_factor(suffix: &str) -> Option<(i128, i128)> {
    let p10 = |e: u32| 10i128.checked_pow(e);
    Some(match suffix {
        "" => (1, 1),
        "n" => (1, p10(9)?),
        "u" => (1, p10(6)?),
        "m" => (1, 1000),
        "k" => (p10(3)?, 1),
        "M" => (p10(6)?, 1),
        "G" => (p10(9)?, 1),
        "T" => (p10(12)?, 1),
        "P" => (p10(15)?, 1),
        "E" => (p10(18)?, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().ok()?;
            if !(-30..=30).contains(&e) {
                return None;
            }
            if e >= 0 {
                (p10(e as u32)?, 1)
            } else {
                (1, p10((-e) as u32)?)
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(Quantity::parse("500m").unwrap().milli(), 500);
        assert_eq!(Quantity::parse("1.5").unwrap().milli(), 1500);
        assert_eq!(Quantity::parse("2").unwrap().milli(), 2000);
        assert_eq!(Quantity::parse("128Mi").unwrap().units(), 128 * 1024 * 1024);
        assert_eq!(Quantity::parse("1G").unwrap().units(), 1_000_000_000);
        assert_eq!(Quantity::parse("1e3").unwrap().units(), 1000);
        assert_eq!(Quantity::parse("0.1").unwrap().milli(), 100);
        assert_eq!(Quantity::parse("100n").unwrap().milli(), 1); // rounded up
        assert_eq!(Quantity::parse("-1").unwrap().milli(), -1000);
        assert_eq!(Quantity::parse(".5").unwrap().milli(), 500);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "1.2.3", "12Qi", "1e999", "--1", ".", "1 2", "m"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Quantity::parse(&"9".repeat(60)).is_err());
        assert!(Quantity::parse("170141183460469231731687303715884105e-30").is_err());
    }
}

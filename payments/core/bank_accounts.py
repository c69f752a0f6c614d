"""Bank account numbers checked before anything is sent or stored: an IBAN by its length for
the country and its ISO 7064 mod-97 check digits; a US account by its ABA routing number's
checksum; a UK account by its six-digit sort code and eight-digit number. Other countries'
local numbers are refused (ask for the IBAN). Errors name the field and never echo the number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

# IBAN lengths (SWIFT's IBAN registry) for the countries our merchants bank in; any other
# country is held to the general 15-34.
IBAN_LENGTHS = {
    "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
    "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26,
    "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MT": 31, "NL": 18, "NO": 15, "PL": 28,
    "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24,
}  # fmt: skip
IBAN_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
LOCAL_COUNTRIES = {"US": "routing number", "GB": "sort code"}


@dataclass(frozen=True)
class CheckedAccount:
    scheme: str  # "iban" or "local"
    country: str
    account_number: str  # normalised: no spaces, upper case
    routing_code: str

    @property
    def last4(self) -> str:
        return self.account_number[-4:]


def _compact(value: str) -> str:
    return re.sub(r"[\s-]", "", value or "").upper()


def iban_checksum_ok(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10-35, mod 97 is 1."""
    moved = iban[4:] + iban[:4]
    digits = "".join(str(int(c, 36)) for c in moved)
    return int(digits) % 97 == 1


def aba_routing_ok(routing: str) -> bool:
    """The ABA checksum: weights 3, 7, 1 repeated; the sum is a multiple of 10."""
    if not re.fullmatch(r"[0-9]{9}", routing):
        return False
    total = sum(int(d) * w for d, w in zip(routing, (3, 7, 1) * 3, strict=True))
    return total % 10 == 0 and routing != "000000000"


def check_bank_account(
    *, country: str, account_number: str, routing_code: str = ""
) -> CheckedAccount:
    """The account normalised, or a ValidationError naming the field at fault."""
    country = (country or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise ValidationError(
            {"country": "Give the bank's country as ISO 3166-1 alpha-2, e.g. DE."}
        )
    number = _compact(account_number)
    routing = _compact(routing_code)
    if not number:
        raise ValidationError({"account_number": "This field is required."})
    if number[:2].isalpha():
        if routing:
            raise ValidationError({"routing_code": "An IBAN needs no routing or sort code."})
        expected = IBAN_LENGTHS.get(number[:2])
        if not IBAN_SHAPE.fullmatch(number) or (expected and len(number) != expected):
            raise ValidationError(
                {"account_number": "This is not an IBAN: check its length and characters."}
            )
        if not iban_checksum_ok(number):
            raise ValidationError(
                {"account_number": "This IBAN's check digits are wrong: check for a typo."}
            )
        if number[:2] != country:
            raise ValidationError({"country": f"The IBAN is from {number[:2]}, not {country}."})
        return CheckedAccount("iban", country, number, "")
    if country not in LOCAL_COUNTRIES:
        raise ValidationError({"account_number": f"Give the IBAN for a bank in {country}."})
    if country == "US":
        if not re.fullmatch(r"[0-9]{4,17}", number):
            raise ValidationError({"account_number": "A US account number has 4 to 17 digits."})
        if not aba_routing_ok(routing):
            raise ValidationError(
                {"routing_code": "Not a valid ABA routing number (9 digits, checksum)."}
            )
    else:  # GB
        if not re.fullmatch(r"[0-9]{8}", number):
            raise ValidationError({"account_number": "A UK account number has 8 digits."})
        if not re.fullmatch(r"[0-9]{6}", routing):
            raise ValidationError({"routing_code": "A UK sort code has 6 digits."})
    return CheckedAccount("local", country, number, routing)

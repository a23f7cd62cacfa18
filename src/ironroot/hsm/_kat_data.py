"""Fixed inputs and expected outputs of the power-up known-answer tests (see ``_selftest``).

Published vectors are used where they exist: SHA-384 "abc" (FIPS 180-2 appendix D), HMAC-SHA-384
RFC 4231 test case 2, AES-256-GCM test case 16 of McGrew & Viega (the GCM specification), AES
key wrap RFC 3394 §4.6 (256-bit KEK), AES key wrap with padding RFC 5649 §6 (the 20-octet
example), Ed25519 RFC 8032 §7.1 test 1. HKDF-SHA-384 uses the inputs of RFC 5869 test case 1
(that RFC gives SHA-256 outputs only); its output was computed once and checked against a
second implementation (HMAC from the standard library, RFC 5869 §2 step by step).

The others were generated once and committed: ECDSA keys from fixed scalars, ML-DSA keys from
fixed 32-byte seeds (FIPS 204 ξ) and ML-KEM keys from fixed 64-byte seeds (FIPS 203 d ‖ z),
each seed being a SHA-256/SHA-512 of ``b"ironroot kat " + name``; the signatures over
``KAT_MESSAGE``, the ML-KEM ciphertexts and the RSA-2048 key (PKCS#8) with its RSA-OAEP
(SHA-256) ciphertext were produced by ``cryptography`` once. ML-DSA public keys are held as
SHA-256 digests: the test re-derives the key from its seed and compares (a key-generation KAT).
"""

from __future__ import annotations

from base64 import b64decode
from typing import Final

KAT_MESSAGE: Final = b"ironroot hsm power-up self-test"

HKDF_OKM: Final = bytes.fromhex(
    "9b5097a86038b805309076a44b3a9f38063e25b516dcbf369f394cfab43685f748b6457763e4f0204fc5"
)

P256_PUB: Final = bytes.fromhex(
    "04fb321dfee55aa2639bfa10987065885cfddc89327b03affc480f1ac9c9a1d2ffd163ab2e1cf5c00e3717c0"
    "e324ace2a0783f40e01db41d3b28004888849fb84d"
)

P256_SIG: Final = bytes.fromhex(
    "9e152680390c1f3826ad94c82a837cde00d78c164b81c57ca0d474c12e9de4d547b7503c4243ee17c66aaa33"
    "d46d92bf80aa623f94c0aafe4ece9deb55f57ab9"
)

P384_PUB: Final = bytes.fromhex(
    "04e359ffd1573aeaa26b460fda0fe9252c42bf6fb0489640326f5d351f54fad022a73de9d202c8c37c3cb0b3"
    "435b7c824eab88926c66712910292c7800e55ac7ad4ad62cb3e69ff41f64e6623492380035488cafb5f6739e"
    "e868b9886a59036b86"
)

P384_SIG: Final = bytes.fromhex(
    "6728c62dffc8e1ca0f3da870f0dd75e1295cdf5ed041b9ae6c490a2f6e8fcefcbe69534ac1dc9550819bc100"
    "e212a363bacb770544e4e0ca7c0dc69948375e437964dce557849114408db5321717a6cf8f298884a4626635"
    "60284f14ebf783c1"
)

MLDSA44_PUB_SHA256: Final = bytes.fromhex(
    "259861cd548035fbc1eabf1173eababf5f461797f4432ef6c820b4c5a635b751"
)

MLDSA44_SIG: Final = b64decode(
    "bZB/09mkALjoBFOzFzpxn/DhT3sjSPWhZtDb33WfcKdaZE2odMPXCQWUEy6FQBqNV9j+oImV/1uiYzT7Admv6vRD"
    "HwMI14HfNTNdKicJAdFl7X323IEAFqDOnfNNnd+ulONdpMhYm6XezlBcji6t+CrfNFg8gi2gX7+D8h57jT0xe4pc"
    "pB139hmTMiKKjaSX03mmiLS7BAQGUeothMddjMmBbDUrMTAG05iPst0xAc4aN/xrBSFynmy8Wq4xEMYVLN0KGuoy"
    "rulY9lX3GBi5FjJlouVfs8h2+BIGTNldBSAH/Laqc+Ihc0mrhjrXE5tSrQqzgpfd8i5/muNL67mNHSpMpCQVIm/N"
    "85ZWF5X829Z5eeeD3g2RD+xW4fMvI17o8M+wqyYMz0fH5uR6UXr29SwWfn2nfbkTjwhfbRP9KWYUUBFccgS5GDeS"
    "Ret5mRgi+FKVwO7iTUAUKVRzYgp0vhjZol7mfrfmb5EWR7nWuJsO2RlX4HcdeegP24g87SNPPY+Ux0SE9D5FqFy1"
    "d/b91NxhcaBav53yAKXzYpn6gV2lZWzTQ2wnGHR+Hzzx6aTtmd527HOP35HRofNnKb18X1iN6E6/bA8hcPbC0UWw"
    "zp4qLqfQtGhN1WgGBrHgp6OwEkGpdSigbjnuqLu1qZpvTy0nmluwYMhiqZDcUHIjeTw6Fpf13Dq9XdDjjU1kBj6Z"
    "TsjmyQoiOoiSFq/umt1AgGdwCpUNgBWoPVyzRBu0WufS7L6b+fqyaBeUcOfKFlzwOZHSTIP8DTIt9vFgTYxoZN5p"
    "xWKlp92CfEWgKTaGWDOqDUWb6G+4rWMkniJ2vUbCICsBaZrycZSEXz+nuxFl4pD7+rvi9VMxEg2QLU9MrPB3Cksp"
    "RBEZWML8lD+7rLZVTYYzKGhJnUVz+CENTzBmLCwoKTE6whnaziTKBQcgT6A9+MwhaLHzt0Mw48Jkw2eDoDfCeD5q"
    "q813j3uslI4DWtRlGeu92OD2A9CQVcMLdZhWJkANNQwPDlPHRF2dJsuYX8+dkf5NdPyRAsl6kCaUIr7ew+8v9qZq"
    "VcXQpgp3zCXH54lALJQ7UZTKmMs1eI186FpbhhZRwxclxcPCmMO+3Fpl1cociBZFz3UBHzJC1XsOCVNLbQEfuKon"
    "pPUOXW5wziCdpjzIapXZQNnpDF/Jaqm9ykRGtBqKdor4cFLAN1b9MOMfzykRRxoddn2Ge1PKMIH2s+rWUczeHBeE"
    "wDLNoQJ4h6WNYVR+lvCoGGQ5CsUGXGQVLKf90iqpsC+kqCHPhy/BgMLAixYF9vZ2JbHlHmMUlHg/7BvIX3HtRQD9"
    "qBDxaO37c3Iadj5Dgxs9p0wJMsxh7ENO/WB4JFrVhLrHy5sETTV+0RiXSx4aBANkusK6FcCj4tl6xz/gjtxJ+eDm"
    "b+l2DqDuEjucksU00nikbZI9ErCk2o0ENmNTwrpUoaw4tMZ4DA3fxWnd6sUHqaLNbc5m01wbVV8uO6NXOat+2L/z"
    "7PnzcRflOk1tnOUJzG8TFNVcJ35Vwcf7COSj6qSnwoXs7XaxyO8+rnbO7Ohsmry0YKncLp2+S7l+P27D6mlw74bJ"
    "Js+4sjjGKq5Ged0ZRpjqQp/U/o+HOfWhahySp0kKq3t318Clw5XNUIxESMXOt5cJTqLk2+SbFQXvu623WeA/3uKg"
    "NFLHdVlXkrzlQ8IgJuKfUkLxChpHZpTUHmSo+R1W+Ozgw+GIakOFkc8r1eoGTsEOB60YjLQQ1vQ5tlp2vLEtzS9B"
    "+W5aTTcFsmk8XkxZliOHc01VAcvYlObGkYiRm86kXBzEot+xAEG3W5z9cmpSY/7mib5nrjVbRkX57toMh3uJhjrh"
    "Mg5HsUN9LTesmYYEYWCjyaisazGONpY4Zuvqtfuk9LBu9czGidLV6sB8sMpOI+cK2ciVOOJGE5paJARxO66szZey"
    "hN6cfifT5NLXqUXqG4qulE4ehbJ5SqPZ8OI4oCfZtw0LpmGqI82B5xWp6A8WZGHUBzszVr98x5XFUPA4LUk1HVDX"
    "WFJYDlb4F2qdeLsxzSdTiOkZEkN3106b5mrby2dibTwcESoVdWTlNAO9/lW8w/RuchtM0eBAbcPO0lM2wyLXs+VF"
    "zUyXXQDH7e20bTrT1rcoFoKwxnMXHK7R01tjFP/uav8TQtgtUznTFAAYd/vgHEoLo7HV7kiozPw6a/cSPOx+r/UQ"
    "rfF6T/Eu3fxn2EdNVT8DqKcKVvtq/UH5bTAio11nCdM/TB3XeEPusYHuFAeFG1ZT/gTqgQTOVqMBj8jSLrbjxSbh"
    "X9niHIb4TzNaI8242Ww2aAScbE+BkkW4s0qmMFc305Ptpi3sgAf0wHibU3zYQ8Qk478tUFONRDY6Z80u5yUyj9Dm"
    "qZzi9xvJ8drmEL9xlccWSPEhlMaueD6I1JaF0Nb28/3M1hwry3BSiqF2SPOUGKLcA42x6Elk5o8/ZJ8MTgyxVbXk"
    "ExYiJaCqDQYxYgYq+pcFPBpnbYrOgfAzTyQG0yFOpKV1DC0Dt2VZhfCCUsqIxSUL8mhZ02y0OWprP0BySscWlLGu"
    "+5GcEWPSCYhwuGcDtnneZIJbTdoRdxFdlTKV2sWKxSZ+8th1JijWhobx71EOKJ0riuREOORfn+hkjFHEsR+GlUWy"
    "wpdJAq4COxC1iR5jnbzYMSj5eCYKFJkDDYTp+jYQavQCm7/OBBDbN77L6lLCxOKEXGtLCXy1cYyiXafJQ3alcTZI"
    "6Cq7wOhFSaEJkUGiMSPXQvZqTtviW0Jhg90rCKR7CPccHj5B2wxU7LH5/WlTxBJ4SY95aBjhHLKhQw7v+tDC2ErG"
    "PSMNagHjeGNvmTTpW7s1Gi3XnP52ad9XXmHFcNXB2p45UgkxE6utDwrxWT2LxcF6YkCRuX3XWuVQwekLZwQ4wF9A"
    "SIZm7e0PhPLJTxw9Bpl3pfwP4Ckkk3ydOoowpwIixRTzdVvvNG4tsVWerObw82bwIfd4qNWN+Qct9DGt5t6iRBjp"
    "1lh3OfLauHMSzd/8oPf+rXSDv2QmV2bPy7Llz7sCTp0PKPoNLW00bwveRArqrcrfeDBAshQsmYaX+fjJlnrML7Wj"
    "KosK7hJ5lrtOfsQxnDE++5B8znpmfEwwkZwHIygqRFp5gpHN4/D5ERI5QmJkuuHq8PP2BggJERQYITJIS1NcY292"
    "d3qEio2SnZ66x9Lb7gAHGBwfISdiZKq0vtfqAAAAAAAAAAAAAAAAAA0ZNUM="
)

MLDSA65_PUB_SHA256: Final = bytes.fromhex(
    "e7ead013917d4449941792292ce30a0ce950680b45ec15ce8f00dcd8cc099eaa"
)

MLDSA65_SIG: Final = b64decode(
    "n0rXaewXFWASbTOHDdKsC1lknTHszSlIhLU3FvNqSBWmGNsf2oLs9SFmIQ3M8bx1Seba8hJCGiE0cjcJ9BnblpFc"
    "CkqjOxtAMkm74cyXP8GsTLuSRX29WuD9cG5iMvdIQqE2WBoU/6/0CRom+oeDkV724nc6HOQm5Ua72n+E9cv1Sz45"
    "1qPambJEW81kMv+yLrbsnbHhKd91dixqcH92vJkAzBNauWh+jSuV5qkBvM5al5K6z5d0QwiDXSYwyDq6AyEYp4ns"
    "GOwFQ8Po5FtNHONkOUnDTcTl/M/KShBN1X0MJp9NCuJ4WZ7r8EbqJZ4mkhIVaZFRyp/qwT9x8BnZdiHcMXyyduGG"
    "bMI1lz0CnC1kkmmW36HiDwk/a0v5p+vZB1+MfR7/GKqBPFTJ04OvS7Q/3lt3EfMI7R72LN4DXXuPPsNmr1fGTibP"
    "1l2JHBBoGpwjmS+3RLtm94iOuCOq1zrDDvMPSi7B3zTcMX1sAIRW9Q+YWQEIoGd1v2Ock12VyNEP9/j8qBXUPgFl"
    "LfZWQcPg986lbf5J7e3pIktrpK54Ff68sP6fLxIynyLvhxXxx5DajacN//LivlP+d/rQCnUkM6VUCsRnwZ1mOooN"
    "Ji3PUbbRG950upA+pwyi7etoHxDkfaE5KHWlpivRjPBz8+5B2mfEoXRedDGsvoM2JG8nOsAecb2EoRfWu5XjG/6v"
    "ox2EdYpaKnmtBFAy4C5MYgxlRiKsoKEPzAJrmL/h2dH6fhnDKBbFHV6me4fobIMO2ni1lJUDePAUs2o48rq9s5Sx"
    "Ryn9PQC/q5OZNTRDJIjamac3HoBQypiuFVHloN/+J9QOZc8dFfLz9pcCQQAJR5XsWr20tkyh4PgN/44qSxsbCuxM"
    "XtHYTUC7ZBod1wWQhSNR2GUtNfIjUdU1P9cvMFCTxQxVoNWBDTnL7JYl/ojpkSmaEVuvzbkJCBEvxe/fU3yFueI7"
    "GkljP4RsEKOihNdeSD6btK+Ts6IjyOfHtJ3sN0Db62+oe/X0vsu0qnOdCc7kAqYqrUoWqfFR2sHx+4ZJwRrcdgCX"
    "k7GDemlu8s4xLGwEDgUX/fR3ivC78IvT7CDEUyyyWZDnZfjO58gM5AG5qKYM6AYJ0oqNHe0dhLELn74P0tpANFAF"
    "vHqBoxG/5gNeBxMq42iz1WFtSEqP5UHdztiBwkxHNXj7UIOG8/vt8qNamE8PD3NQWBU/huLG01sWrCsBIf8WAEDg"
    "ndh1q8xUT8eLzzFQx6/bZ/aUxlSkpOQlGjqqlTuyRcEuzsfxr1abc3TUtFle+D7aXs+jFjhkIsEyn8rzHAWPErK7"
    "rSjYaLB1fuijbusRhmwzOrBC/wj3nm4pF3vcKteXYGYNan13/ypNa1ceAHsyEsOashDl76W3Yr/CTObexDoQXmMs"
    "DTlSb+q1mYV8H57nLAntC37t4qnrQ3+mSv64uwgckkZsBuM8FpSiVdHr4Qid/ABytMA3edpCsqv6KrQoj1hf+AET"
    "8xVVIzMb5jHsL8ommtMiPWpil8sT8msTu7k8XCkZ3SCZjFLw7hrRK9WKyvgElpHryWFdFMdDK7S7K8umpXhi9NbP"
    "4B/rRVRUFr3NC2bqw14dcTp9czacmUjDaMRBvMmk/ODqHXRiBFoMmcNG/VzcHgFIbgPIndesQsyRCU1BnVXvpgcO"
    "vrORmnjl4cJUl8tMj33QwCAOzqb2uBvauOFB8NXyyWa58b0S3D8ADjkErZ+Ff7M7yGkKMGXRIMV17GAnUI42cNGS"
    "td+bvEgrQEMdpJivyuurx4b9G41bDFKflLscd1C0SpX56jm+UQ8DZa6SvIM/0+IZArGpjQUr2pzcsFyTbI7qkxYl"
    "7tc2d40tEPUOl4EgHB7sYMnAC1MY0nNVJ0Q2V6ti0S0iWCDxP0IL4JvZMZ9QZkR98cXrwknEz9H5bKncUkdPbOjp"
    "W5mfA0Tp8rewIzqRfHN8QWWRPYftrCyiDoK8cNFNBdmuxC8LtZJsk+18rqOoxzYoT7WQuHvUAgoivedlZkUZmxWw"
    "SkoSCMcinfX5RITcA0T9l4NUuftsoExHc0E3PsdoBl0qKBHkoXWi9VN7uowPip9BglzFMIDNVquCM1HtRjAT1IMM"
    "45+oCdtlP2E4ZLoJ0F0Zz0+4tksjuwYY7pi6W185DjZrDx2ul+unqYFPvmI8GW5XJ3kq2AQcle+5UUncbh+CpkES"
    "pAc4F8ULV1CdPiO7Ig7z4r6WD2Z5H6z1OgK2d6WbNTelRzwCfRD2RKRY7IwQzMYhOYRSgbJYGS5+3rO9aKwXUAg9"
    "/vyZd8IdicX/M1azRWd42hT0Cv1pvYdehVmz/eONXKSXYrZjm6ZHh3pDBn3K/2RE6h3dBueo8UvFT0cvBe+kIrDr"
    "tT/8/62+BbK/Ra8juDn2ZcWL3QaI8NhtQV0LwvUsyyWnKQQScHdjFRTAFUHpta//3pxlFKyJVT7UYJ9lT+7PWd3R"
    "4fsXT+QZYSo80pCkUYRKRQHl8ZGjziuLhNzFiwWpZ6HjskQgcTArLk920wbUioz/nmEBFh/BsQG478035i9Eb8o+"
    "XVCgAJHfNAhARJnJttvdGsL6SfuY9T1wmBKJjYg4++OfAptBm4Q1cez2/GtrVXyO+RHgrX2DETY5ckWatNqqF0YW"
    "TXyTUlbADqfKF9hFsSQ2EwwOkMjVSY4L8IGC0ZGkW+dEKjjzOwtyJDvUv76ejRKlid1QE/TIZVVyLqvHFY/iING6"
    "nMPSDyQZpXGk2J4L9VcXeZYIqPx2LMGyLtfR3wQ7nhLFuwY+LH/0qMRxSark3zeCBAf5xyMokQFzOeR8MICH2xNF"
    "ge6HcfFrhpQBSGcp+10wr71F1LIgWdwz7i4RbXxTmc8zn3SOPy9CpQl4+f6TgqJXarSycopvHpHkhqn+ApuQVumG"
    "VAbj65wXVRb63MfaziM2HjWi8L8eRQxhB5Bvr/21hnfD99Q9yh9AQ8ndbDee5zieuD04jOEqrjnjT5dNiV0UTnLC"
    "bircp18g+X9cuWAZjZiU3IDRNLQ6A1nEVyNwK8OBlrZkIYcDXINXkkl2qgHOZyMd/4Kgp75HVDNL/cMYqMRZFm45"
    "pp5NqKHIVXpPqOgzNP3NjKrwXjcPk3l6g0zVEDTgWBcBNst4i4dqm7w3zpRTneRVy3g0xrsHGjKk6mODyFQRGFuy"
    "LpAMq8tyq8lGT2H+d0l+5qadE6DJYF+QjFWbTrpwHaaL5z5vaS7Lo644Gp0Qs96brXSLEVKJEN6TpIu3zuQgEpfF"
    "D++UhSh6J+I3l+oqcZVTQIvgLNxir51e+6paNOZz/O5JWTn6wTx2ntVeAXgPOtDmibfR+kv5wYG3dF6PIEdiqh1J"
    "OknK1KsDgPQEOsojfjjYqzZMxZTOqsbH4NBl9PmaZmjAmGBVKOzPiI6DhNoJATqPwEi0hNMVLY/gY7OgH8RijFEK"
    "Qgaq/5PwBz3JUNUou0NpfJOzZzYoELn3m0T8MKmdwABR0pxG1DxsBH3EXcwoshMMOR3cBY6RtIulpMGmF46CosKu"
    "AsqYyOjTW/nM3ORythfdLlzSjvMo916BzfZj40zjhadVRNPopZJoUPDYmpZqFxP/nMLsooqDFTMacPUxWEnqXxWo"
    "4XUtiamJtMHhB6v4vnGp749+8iPJjaV1T49HQBu9WHwmuJ0IXy78FSdcEjTMjOXxZOZXblHFJ/7Nftl0qjty/F8+"
    "UE3xlIYVUl7f8VhCl3vkyjHpSVjBPEghodQR4DJrAjfxCMLgiN3UVdi5b2ZuIxhyryoQx6CIn2o8GRdS2zevGVeM"
    "nnUaqr7XkLEgf7Cu8qZZpJMY/AyQDr2lrWxuG6zRAxdGj9U3t6tIvZiy1fmcnZAjVGlWw2sGw8Y9SfSGYNMg09II"
    "t+3etQuxduzCGX4+V0nLXy8pjotmWYiPE4McVswgWV0TD7j6Xx2x24mmnzF7Ka3xGVxTJ2a5iWmWViDRhlMxeMBi"
    "qmjGe2EVkDikkUEBoSh2zm/3TkPlSVcnuGWLUii0x4kTCUjuGli+28ojCcgAslvi3ELkMk1+Fbbd4XIYivaJJQeU"
    "iL6S/dI3rznG9Obk7Ir3FnwZY5IqEhpE5zebN1yEYxIZG9lEK80lycYZXXEmTKpFdgAFnfg7HTetzsOg/Uf+H19v"
    "X333JvTouZztsrXuMMHDZkhfj8hxNLA89dGsQ+R8CkUD/zsNlmIUK1n21MQCkuluxgqXAwKC/zreB2wrzRhzkNNE"
    "TK1XTDz7dpqF0x29SIsytIvN1NKCU5aNmReiUtGK8PkowAU4o8CprNXPlhpPlPFjRqLo5XHGxvkugryFTs3H1MCx"
    "agV97QRW4zDzC7RKAhs5QEO5zO38/zIzUYGK7Pj6GyhJeqO1DA54lN0jRlZ47xAUOEIAAAAAAAAAAAAAAAAAAAAA"
    "AAAACBAWGyAk"
)

MLDSA87_PUB_SHA256: Final = bytes.fromhex(
    "322b0fafbdc65c8b9c1cd2887ea634b76095941755dad821bb6e317b0cfa8038"
)

MLDSA87_SIG: Final = b64decode(
    "nW3u11TAf7lhZiw95cwsxpVoRjAPMOKFLfZ9OpFk02w5ecfz+W3YPnuG/VWH7vLH6kgR2bOvOqwmy4qTM+qlZjiC"
    "7oEX+cziJEd53rxuLnwnW8HgYyRsYpu8K9ayS3gs6fXsIVnb9Pqi7LJy6pUB78mcJL66TagBcSQaoOtCijS/cv0I"
    "sy/FeT9rye1N3ZJe8RyJlR7i+zXcf/CmTSxzxr24B+MbZE73vfnnSKnpRtxg6rZtenH0Q4RSQL4Yt/HyfpDfygUZ"
    "dMWbf0OR8c7zXEJPqDHHiSm1OQ6zygdkXZNjBTvCGBLt6WbWhBekFV0dmKGXLWU+P7FAAmkK9VVKeITalK2GwnQH"
    "wIo8CkXPGkpKJDzMqzb+bNF3vim7NuORzEeQivll4j5fuif+QelMFhUcpYzKDRPmmnNinGlpZczaPwLYt0jSFvw4"
    "DYv2lTusinBBDz2j0IsRBgNcYR8giRpJuFR1Z73JcNwtzuH7IdVaWRBGHs2iRaMV62QwD1vh4k2AeopJgZja51N9"
    "Z38hUllwWrcUprrksZDKUvrbb3ZoAzjg+94QDupXOAQEIwWh80J9sxlqmoGiJUe7fh+KNbLy3KTv9fYJ/EBLPgTF"
    "i4I7JsZoehWZoZlWtgQ+/kBIiGDA7saEKdH7rgOJaMwqcNEwCwTyblS0EUNneTchewAcCoBJzet8SBBmIifrZY60"
    "hbzXXRe6zsjJzzW8lOkjxA5DVLHFUXLkNjBHxEgWfiYeycB75Gp4qmXsrff2GUUGf6kncdwttWQ85maZ5Vr1JB8e"
    "Kl1KJ6hoa5poZ4AskHLy0jkb3OQwv8ykD7R/0JHR6YpD9J9722mGhHxkZkEcuZghSSEA5U1bEOMxXgB2HUglg4tE"
    "x9k7nDfh+V7xpd1fpOE04DPqOcAv1Vho4ThMEves9FrKqV8PBhI1QoA07OKh9XFoJWuOsSlYjQag7ylxJ3fHYBtA"
    "ai+i+cw5QGUo1x1yIZWsRNopzcerArH+7lzhRD4rADf65zIRgsEBD7/ZecAjEnCSWR0wKjIjzFVll5bhGnU09Fe1"
    "iqlQMws+sCUrcrHcSvdrGTIm2eeRoul2IunadtpWH2TZd+oyQ4WytakTvYGVBR12oBGQbOmxCI6BGK0fxmUfg4XY"
    "V+xXkSnkedbPecwF/dsLHiiTKb2Adom4Xz6ZDlS0WBpScAQLqW810mmuRi4Z+gxbivQtEsjL0udxCOjprP1qkvX5"
    "gnmx1kuX+oabYyIW7g17WzQQY77fEmGk5Z2NewhcELjPN2TdCQnTzYNAO42KkeskBFzoT+MaiH5S/478y+8ZdxBk"
    "LWTw8fdnCLr9sXC37DpKAqgEks75OmF2Fwdc1eyBAQ3PXCyQMtmNKbXjve14wpT7whMU/YF72JTmKWORhHyXygwW"
    "QhaxVBwaNpt0S9EFBqouMz6biobofibayzdTzLEmq6r8TnuwWMFSpL85IMDgBS0IihH0DUasEfYvjalwKF2uqiy/"
    "uyuY5qjYFPDhKngpKsxImPsXR9cRt8xI2d54PKSCCLYaGdzspMVanpY8RmB7KvY5fDnncHgIJdmjhcU6Hxain8L6"
    "ZdiNxiRTLrT4r/bjyf6SsjP4K1irx0GWFiNK+xNLZOJCNPDsP7kcTTBMZTvwkRlvqCdYeEHIqU7Ooya5z1kpaqMh"
    "VSBQiCrSs9e/0UJGWLmsPUK3Mv+eTgSWD9Tp7RUR9euYTuLdn+razAXOVIZc3xFHMsPk9crzIr5Ya9nhOnJ7PGsf"
    "5iW30fMNWR/SW8d+owCVUCLKKrPGDlg1E0Om7eEV10OHmPGKMLwBclRPcMHqK/Z9bgrToFJTsDdsgZ+QQflrP1VG"
    "WQp62my/H2LV2BXtKBe7N9draRuAZcahJPZPalRvhr7WFXXhfS0SGpOHHEcj55ZIbfWcDoXOANSn6XXK3OuFnZWs"
    "gTdvr5t3LF7NMfS9itR/bX4bp0RQCepG2o1fG+iGfggX3OWfzTkcJt1b+tJZSkkXvJrNiJ6zCwIocwSfB5LemxhD"
    "2chnnWXyNoZPCLczvnJJ+bPGFF0SzUhPocvKfB4JcvvxABqpjTJ+jeZuqlSkUgxgzJGkIZL2GzydkvbqrSS+d6z2"
    "wBVtjZxuj0zKfomXCe75T76PDsIIjUfJ4uX2sBI4V10JPoqir6IVTAZ+D7VxFZZwxQBY0Xzu4YwrITrxl9M9qJcg"
    "cvNW25KJ1c/C4NFXMUQYbRuqlwMrUEs3fTFmr5lV5ZvfbVtZ0F9+vzPT33KfPJx82PD/PNpASxqLVsvtN1qis6fe"
    "un+SzMqyLiRq+etlhB001ixUXDo9Imqvgmzm95irxN0pMTMU5psg1Qjqn+8sZC7fZ1MNo+03mDqAt7gTJ3WFg2T0"
    "RfGtxTQpFQqSKzv4J3Li2WSBO4gOH+k4XI42hfb0LSh+DyfZIINrFNM1QMwP2k77dGqrq3nek/ub6CIBocYze/Xm"
    "5E7kaHJYbUpXKldERDTnxq/x/xCjhkOEq1BngBF4FUaZOjbyuoTvm4iHyLQoCT9xsRO+m8bx8hoHantX52m/dY4J"
    "HO1ZFZqtbVt4xBD2B4psjy2frwDUbLwGQa0LUC8kvJtm65v16lxTOZE48unEJ5QXLId4KmGXz/495UYioew31jrl"
    "xdEV0hcWQ24dKurgdRw5rbuMuh21RlrCv/Yetzi0DF4FpzwGtBLNVETRfz7+SHxZHzwgjOEr4NHPZMa+Tl+V3EGi"
    "QGSCwxdPD2rk94/Kfr6BnRjAamXzwIhFtDMQjSPZTjyNRp1QpZkpCknn3XqXWGXNpTwFtGzMgR3BK5gb6PH9Cu9O"
    "rBR7zaEFUdtaaF7CYsvdIRzrmJvvFVSh+VRZFySkQ/Yz6P89JC+3H6RUhi782PEwvY7GCoqFw/C713R9cOkUscMq"
    "mWhmiBS5Oo0zOjeIhqMM04FTsFCr7U1jsxjlT6j2nTbJbwiBgWCtPlfproGcvYXnUkyQ8vG2HEyx0qz4wOevvUra"
    "FVGB2slZqgbAitxKOCI1UWGEmlkW3tTrTbksePihU++T62sTm58lCotOqIhX6kbNmRPlh9M4EAOte9NUVucxVb+B"
    "PH0qVFZ+drJia/9c6GZ0zqlzX5JolTo5YFPenZ0mkB+3LkCbDed14Jgub2fIpRiWg17DPxZcQKCRwj8wdKDOWeNa"
    "yV87SoVwa53RwYOy/4txU+MfMYPsp6nrE1nKBO3H/Z7hpTd5WWhKfnYwd3hoBe5ITIN0mL+SK8Azj3RQE0LOSqri"
    "Fqy8GO3YgMcpFtLuj82/c1SWKt52zRUL6JEex4WKbtfr+L8E3OsKmtIXklMFrXk/KdGPG0930arjxdV47neGcQFv"
    "+/mbtDNgzEYydeXllDWFhDwW4esTW8qmdhhqnWV1IIwFAdtOBvCCOH9e3sChu2RIhiYJUsGgyifG9nbE3kyovIW+"
    "baqwixeAdywnrivzW11jyGwBoYqW904GrLExvb+eqskmI8t/7CvXEjCvqs5UB1FCCxAcAt0yPw9IkHi6XtaFsYas"
    "ldsqvlf9ghUnV/a65aySAoYWXYCAgczpdvyUxKj+I7zKZlskvWhfETsbr52Lb6VfJIDuh6Ak8n2ML6T3zeAGPdJV"
    "IcL4IB7z+o/Fqt6pWTCcsd2HW5RXqz5b7YiDTn1EGh72CPmxxF3UhQSSG5m3W2Iu/3FldjggcOrYrQnUzRp/N2QL"
    "y2qHdOjEaEZvYOfXFqtuLQReBJUqn5laQGBSvjQo2kEr44LucZh7i3EfXgY2racNkqDqr86RchBVeKAGOjgkbTt0"
    "S87mxTIAt0S/81McBw3R8hvhQk56saXiNU+iq2CEWg5modPD9OeoK7XuWzQkoiIwZDTMaNKlJ9pj+rxFnEjIj1zy"
    "n2E9nlk0XPZqQlu9khDs37VE4dvGxgPNqw3VICweF4Wh8wRRNWXxnOhWYAZk/kn7OY+dNGLIv428Wk6iQDEWN8Hl"
    "BCgcuoC/wMsCl4NKHqJeN6Kv438iG24F83y9M4GS6jGDhqTxkyDMbywZSW5yAc834VaxYvOViu3rMajb6HHbPpqy"
    "irdOI+tH8VYzcayRMtOM4YvvfqAfhaNc2RtYvtYCXyLHcj43BENsEEuAuvyb/r4HC3TFNgfWFG8BTA7VWudJadC6"
    "TcYafQ11ZD4O4JILHmnLAtWR7EbqVTIZdByc8pvnmcPBBwUYpKPpV362fXZwy6EodCdF9d+9bMTsAe2PDCcekuHt"
    "VLqom0BtFTFI1nMdEwHDjPgGFY2B0tR5iY5opOxvTF2gs4K6ZYD/Tg2WvSbQbPz/JUp2PDmJz+/D44pyFkfMjchc"
    "mBFvDBuFOcTBnhCghL9zPVn4quxYt4dnnkLhxVPQfcTWLdfPaV9vhcEaH9TZJeoTyVPUNy208fQ6MPYDdU7TTEm+"
    "kSCSso8bjCloJh7Oo8yvelBSBESUkQYpGT8OgZis+ePUsk1j0l8wx026OE60OAo08gWDgItwLh9144wqYEA3OOmg"
    "kGRZq9j5Bai7hnkob1IRXppPwQq/DQeljv3xVmwKowjkNm/rni01fjQ2feEAVeXCoqBNOVEImj/kC9Se+2GyoXZK"
    "HmTsANiygNpOHj8RR7MkttBSeK8bGb9hdkM8MxFix2ltPdpHZjbo9QFEfLiOXq+Vab/yBQh37JssFTRhDIcgEu9v"
    "MjH/neQJ8xPD49cRGTnqlTXBzxfv29NTGEmo2hHYH8rTNiH7D4JHfRQGqp2OHyBennI5DQPJY6mQwedIZm8tlnDe"
    "XqDvV0RQyBsLWE+CZzZAMbYRrpHdwW+kGMh+uOzLQAfFTIocAAH3ui8yHpWCBy2JarC0+I9PaqlriVQFOyXocGld"
    "c0zlj9+LLvs5lFLTPToNxus8IK1pZ/QuOyKAzWaq+h6A7e0k+/nYswsqFBcUQTy4IHYbxB2JFE0girvh+qp8KDy5"
    "MvAWauvGJHR8Nnje98JTP2o6VV3w+kNeA0H9OsrurVFVSs1nibRLRaVNdKexbfIIFLatKSkPBxWhlNVvGSU5Be6D"
    "+HdTGa6/VGMD/2PsRuDCrjiYLACQFBX/8M/+70eEr7kYqpFfOJMgdWwVbPE99RQQclTqLGjGgbNKZ7aHTYjseHqO"
    "PxotRC84ytArsbgiWN7zCiFeP7Ocsbrefldh5l0b2J8eGrh3NQRC3SHRbxGIILiTQ9WHLbQnPXFQR0Oz3fUNIxmf"
    "JUHXFeDMEdWdMVF1uSQGA1Zo2fw7PYWyx4yQ7XoHEN8cmTDOiUm3AMAfW7enoh98EgR+LIefKDPlKn0ytRYOIrtk"
    "AggGMnQcGTCxNL3EYEvVyxMNDvrNMjI5Al2q3Eq6F/0NiIfBQkQ90iL9jbKNA/hd4Ks707WMPerrrsbiodJKlmAs"
    "iwFc/vdunLARrFF2jcYaHra+KsuvL3zyKzlZHNVvWnhwdr/HMq1NDJ8BmOQrC16x1f4VvVftpntJ0mxci/tXyE6B"
    "q6X6PfkSg7HC5oU9uN4HWMaxkKw3+jfNWuPA79yxBDtl1GZ2vATh2ZDjiJ2kug4arTSKe+evatYS2gzK7oSzlrRJ"
    "RxUxm2uaF4saSRNRyda+xz2QAYa2k3cBEN66nf6DZnHqMtz6JJ8zU/N8uR7RWQRUoEvs3GWQljwRZkRng4oaR8pC"
    "h+AHP5pBxD7Lg9pqWM/bSLKez1dI5UVpCnFQjNJnYZ1n0c0+Glua1j7JWOHcurnJID8pCUcq0cxf58DYFBCdwCnm"
    "zLiHfpSYJRHcBec4Qdk7xx18VQy+nLhXWI/NOIM3IRCP4iRyisA3ISnT0/M1ORYKQMUBiXf1gGzOIUD6TQ94LCS/"
    "3JT3NE8lwk6QYhbWS/zaSj2C+YRjV/JX7ZH16m2VfJkVflhgRVe1m+K0neoMve9UMZFesiv75rNQ3VVClAYC3hQx"
    "j6p45ek1KUAKMUy0+YrMoI85JnOgQV2taLURRwvzQJQkRKKwsiEjH3A8wzN1guz4KBc0M7ZmbeAlsmsb/0iTymAT"
    "77ZxffaQTB8gu/d839kHhxVBAql5U8SubJ5teEvmzyAl6Fhk815+ys5AfchtH5smI6yRESAgEycTL7y+y+IzTmZ7"
    "yt3nC1BabZzB9hY53fMbMTY9XGqk7/0/yx9HiZL0EiB0e4fiAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAG"
    "DRQYISMoLg=="
)

MLKEM768_CT: Final = b64decode(
    "JzNlw+71clgt/XlvNxIcPp6sFJoEZwZTDmb/mneKIly9BPiwgXnmGczvwsg0Hr9VyVhdlocTki6lHG2PkmQ1ArlO"
    "Mqy+PWK31DaM19Alwn086E7kuoA6Oq+7FQmVTarrVVpolCHxHE5RMMjbRFx0ln98laTdnUIzJ8+DIZC1xDcQjfFh"
    "rkw02lbksAoFYvPCWyNMFrYlbwdgpyZLb2M9UMz4D5VMF/sv2qLLYVh+amgPo2X3GJBUDqbhsCrnilnIfyG2rbuN"
    "mcV7f1jmrXyyuqAth+phL9Zc+Gjxq/dU+HGnPQ3Y/LDYn5TT1FLCoRT3WaNdpFYdmpc0SgavVo9j76uzSJhWeAhq"
    "lxv7p8GD8B25k+Ht+B2qM+HZhPS+20CPMoWmdDs1llxR7amr+4tf+uvi15nlWRrflSLEXD9aL//mcfbGwQbEmNB5"
    "br5ek/VaT+BEOniiBI/v0BX4ZcnNysKP9ewfIY+tnWWDrgFJO5PBBKXLZB4pqpBKsKXReBs5R1NoyOL7bj8P6Gou"
    "XnVuNLBOrxpN0viZwYNd7Zfmu3FRFH5PXQ8BAOdf+rjKbL+B8KQSwtuJb/CGFVJpY71/633F0ncVtfBRchUeGKbn"
    "0gMc+kM6nxCHWKV2Aj31GjaNTodfSmb0TRzrIeCBap0QooZdNH+vP+VN+ZC7dSQ4EsaOVlxz37/H/5iMxXlGTBlX"
    "8hXeWRAPdayI3v+vI7ugGdxdqdkr4OtnPArnXiiNhyu07C2W3i15f7G94QbDkykbcRVEjS8PgY4FmG8atQiu91PB"
    "4+rPjMLM42mA4DhTXxzt+V5VMDg9cpQZuxNx/T7MktUC4kQcrjruoPkc+rBKENKwQh8W2YmxffUDxFNNf/VlUhSl"
    "V9j8Up/P6+/2O/Y6/QvB7/pc4gLqRi1Dq5hZV1Kemc6XJ8Yncjx80eD+L9/0HQsOnvU92eM0/S4LECE/FF1Hunhi"
    "YQXxfVqgX/W7Lv4CIEvND/mGE+qZGnzFeX4CTOsPasNtWPtNT6nRFfoy32dcRSByDYqq6QakuHrqdRagHh/drVqm"
    "p4r91mBOIrmrZR/LKsG8MjYR1t2bLzYNO/GLWaVl5lVmIOzhL0rZCWHCg6/JEfTJTc/QggLg3sGEWzosE6+3Nw44"
    "bT6E5FVNITouWnr3QocaHbqW9gmE4w7bOwybBiOMofyaRpFVqFk5TVIg6TSe3FYYvp+l37aRsutL4DLjLrRxPSd7"
    "JFJEcNsyzwtgehmy7ZMFA8qkIB6RM7HgD3c0SXFFvJ0geIt+tv6KShmToCnj8jys0tbCsc9eO1OQWsYZ/IzJSo+A"
    "h4v6osDDbc0+K+0Me0QJoXNoaQ/OPqMKGPRUtX5xQeJLZVJflqdWpkGlp+4x8kpZfcM9bmgXz2/X0YWEEG+zzmqP"
    "kBP/Vk+isKxvBsXsrjTfsPTi0yIntByeOz9vXdonJpk="
)

MLKEM768_SS: Final = bytes.fromhex(
    "ccca5102e37857202b9c462dc6642bda0694a67d988bfee6f8073eacc9e887be"
)

MLKEM1024_CT: Final = b64decode(
    "4hD9DiblPfv5PZv/P+Th7/IrZXFjWNkN/Kfh8/Rl/Xa5j0eOww7U32mxKcXnTJ+X79QW8wdCUDpUgRNmOr7gUtfX"
    "Rs1ksTIJ2YhRZmOPeBWJ05P+U3mF/6WjxM++z08znd+XqJfMG2UN6YNV0HPBJjvtgJQjG9OjSYqhDtwei/2/DGpL"
    "pn3+ZiM+cCefM/Eji3dG7CeX/X79UzKLw/H6ty0qvUvkT5lPYH1BBAAQNPXwmHaFGdr5b98EGibXwo6JkvVwVMvW"
    "H/EEzXX7NUEdX1PItxt6dfFuXxNzxDlNXBY6EYOO3s12eCU6OAFJu8LgjL5KzCubvKgksa1r3wwn6J8+ATNelAw/"
    "Bj1H+YaLyBa1JIc8bzEP7hcbrvVasqyPA5MKxmiTGgjvLdHBCLfFo7Nsa2S29E/El/lxvz1h6qv8dqZPmoag1+4B"
    "W4VN+ghUxvknIq004ZoIOFDdFDBRfyIrXD5+9aj7r7XQPUvmGCEvqekRkt9A6IdIbWdEcY4GnF6CbuNsLxOL2H55"
    "5OI6jmo06zEncxU1dqykBBOPfdMma92PLn5TbckoXsfxsOU5ry8A7AWNOs+06ZnvinNNlzJFnUB4Qtl/n5xDcNMq"
    "QRFCKl9oE6+JyM79dd00h0H/6AKaB8Cdm4PmPmPIACkcuQ5yBPAOzJKRRUr2Jf/RQq6zOr2E5Pu27dlTlyAaqEMx"
    "LooAdf+Wr0Bf/fsW1VlLDqzqywdKiE+XKLzGi63X1UiOmAcds6lu7ztURL+L+9Fmrs8NrJjUX9KaK9nJJ1W2nCW9"
    "iQyEPdmmPGbE2FVVE94e/z7mCv3sW3c5RR23tgTPAYaPZwo+4XLIjrcnW1IIZRFyUow36kzPwKwXl1c3x0MCveZL"
    "YsoFvJxLGBnpcI1yBlj7wgpHQR+M6PLBTPU0MPxFALFWl89HyuGLvGKqi0YZHf/p3XhwMKMaOcO7s1HBa0n5kWCi"
    "Oz+EQ5frfXkIIPE1jfdCNegY1dkdADQh5NhhlVQoqqAfhQfTJBFufN8TppcNBqrQQv1/Xn+lv+7PjZMxKH4tKiWg"
    "hO4jQjG1m6nmepta050zm9s9c+c4DVDXnXZSSGnaIhac/AegZc0heyGpRxngfPj4RolBe4dcV/L5kc3EBrJ9Cj6Y"
    "MyojvEVbvJxQKh4JCEARqpWtNgxBphHjOuFz13X6s8ENi1vqv9wTfPiy9BsXHrcsUm0QbetLnduYVFxnG24Na59p"
    "Q2mGHQEZc/Qh/Ql4oH9TZBmeiffV68Kb6xGGNFwjyksMMPh2MJFIsN4s9WedWKb69BVKa+Ln+AfN46c3fEgN2yYa"
    "sIk/9t0Y0NRebTlkJwzHMjG0kDO7VUnlxN/Z37wJv0vOWtl4FF1pQHDow0mbNdi2UfkTGcg/dMkd6L/K/hwar7GJ"
    "t12LY0ypzqnmRy2uQ9X50RNrA0IUs9owYeHoLZZYYDnjYYHsLnDtaTjRWfpa2XXKdY/csGjEP5Q5z3TUkCQ2N90z"
    "hvrU/iwkR8ZCpotAOfTlDWxPoZZVgd9kJSoIg5IokoAtkKdkeWhvYBarTke6DC7Y8mvNbDo5o9Q2fMBDlmeXrYrz"
    "rjwG0TPtXjYkZYEMgZavnNeOhvziQph90O+EDR+pcCAtGz/Dl5LQN7tzcahHg3YfIeuVdD/M+Bkl9+VvHdWF4Gre"
    "9IGeF9yliUeNtVGxVG0EqatOEEd58JvjdW/Ecp83RIInwFDg+7kEk9YkrBwBP3WEmGsQW3ZLXD8wYhmO7eG/r+rp"
    "FvsFeMJmESwLCHgi+KHfM4FaB9/meRnLeymQCGylP5Jf5YsK2DIqkT2Kga2EdgwD/HSUYc/AHddQGK36BDfgFG2I"
    "uVZ9lm54w42uJfeHEWEasBLgMc+YwoXS1ykqH36g+uAGGEjEIFtj8ojVSWbqSlO2uSW0x0Uu9CTb+H6LO9ExT21i"
    "4AlcJYzhwD7kki8Ck2LNK2t7UxmkKSZqtoZ+lnB1HSy1I2U6C821ngf2tex635CB8quayJZpNwwhAMRstYChrNLQ"
    "mH3r+ldYV6x7rhlMeJqvJ0zgw3FCzi0h/m2XZv9+PVAyNTF5pq7iRZj/Kbxnnqy4mAk="
)

MLKEM1024_SS: Final = bytes.fromhex(
    "a511cae942ed79fbb554d32f527be902c5e4857644c61d0d4da9a5e7b15af1ce"
)

RSA_PKCS8: Final = b64decode(
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCc3bPhlf0VyXQYMZWRk9r6vy5n5lFfJ1kHwTNv"
    "EMJYxR4JuT+/diBRZRvxb1t25uaaJ8pahnZvAC2/4thQzhtldGQyaqLpLIXj2fSbHxphK4T1k5/lYvG/PB5AAgc+"
    "p30gqIOfvzOTLggBc8dyG6DSv12JrX/tWeu5hjQHTSnyY6Lf4DgjPOSki/t1KfF5d3ZWuUdtGb/7AzvOiRpt5xPt"
    "rySj7atMS3x3+xF4exrkZzun1xr2R24xifqkL9n7yVmg8lQ+nVjChEjyhNsbeRa96Zen2IpuuuH1IlQL1zlmzxo4"
    "ck1wLzOJTeT2fy98M2drNMRpvrHH20NqhnbLGKknAgMBAAECggEAB7rfGd83xQKT33tWCQH1uQSBx2nwmZVJTFoH"
    "bFIxmYlBJS6FRyyNhCVM3rVjlvTi6TbLwHE+1dJ27q1Bhp3ZeMLnCxr5Iy9n+6XqaVh7hs1LtIRNTVL2YbuXLAVN"
    "kRdU0a6sKcuUwYxzpYqsieF1p9z5QYcUtkAHnzFPUArL5d9SR3NQDpsHC8RnCxMV67A5EyHYM/0YUGWu4QbI9WaY"
    "H/rUnCCylf0dDvrPkNP4ywKmckmT4A7OmrJNJBRCIRyhwNRaIQljHjH3lH+jxUXtowXaYAqdEqApxdZKrkBwa3nG"
    "G4dWRJTvb8j2HF7yPbikxunFOR+0OSbsMtkvAT1sRQKBgQDUR+cAjDv81/aT6S+nVmWxLw2G5lmdn/1Cci9G1rfp"
    "ExTLakkK3CjPuLpo1GPdiN/hcQzGHJAKXkpS6OnpPdSrM24+WdD6JeucyYh9y2jnVG/SftZXALyPgIfpVAdBjpQS"
    "+Wyu0O8Wp7l8PvXrpjovzELqFtuvtHlqRZn8F11JjQKBgQC9LCj57MQiMn0BLCGHO1qjKPITsWnTXUhhOfmD/VGH"
    "UMwA7CwzJo7LVm3q+nOeTiMAP5ZbibghUWnCktqX5DjdFK+5/Wj+SwWG6AHaNVVvG9UOiEBg6UctttPYlOymZvqn"
    "s+ipr8MQax6z1nx+ZwubnVDixjqxJzpD29jK45OegwKBgQCHcWUTdWZk+gpq71KnazmxJnt0Ag9VwhneRmqhwShQ"
    "vwr6itMV6cjkWFIfxrv9QnLOLcpfsSO6adT0N4XfesLxhPwnLjlnEcDWJcQ/twQ07Sv321O46VBmIzUUi7ehfW4+"
    "+QP+OnMCOnvfqXBRLZtcmfBr2a/L2NPLGaOZM/MilQKBgCGPsxlb+xQCFxFdLfma+yKVQhViVV8NXqj5Kx5Sk+NI"
    "31iOjezpO04x4EBe/KIqRKVnoppM3aDzm6rMeQGXmMsIP4Dkx3rN/oYHpUR8T9LtgigY3isTV/BxTjZPfYisHm4g"
    "SffI2feQuZq4Q8/9Ih8SkuYYuxLw3bJqT5T3ORpXAoGAMLrtWe5wVDuhGuyWJVwZRcEiUl2saaOAwB3tZ/SGEmf/"
    "U5zaBE6FPxSt1EuycGb7RwefyPN7k4b29wnxSOazZYNQc3P7ZMkrOGbFlKREpE3v1GNSvkVHhLfOYPbN2ehLZxsP"
    "seO/6y3Js8NnDuPweob328AFUNZRkUEX0R38o2s="
)

RSA_CT: Final = b64decode(
    "EemaSFH63Avchxs7JbqJKs+l8Uqw2lFJlWl2gXWB7gwCif68/9aMMAKVEwChHgoxdW4XmFpUozqv/oQgAtkz0rvx"
    "WapNU6zyufZ+GDxYvqPCXaVb5UajduY/IbSa+eGzZRPJS8nUtaB+FeImdfA2izCgAl3u3Ob+RDzY2z0QI+w4FeF+"
    "kMhxHEjTp1HC2B2lt8f2XZ0vDvxmr1N+ynxDVDsCRY2fSXXIE5PgVpPrQPJKnuW+E7Aj4kDv0IsdkHQwa++a8qpu"
    "oDSoORP2M0fgDkMHTn633wNG/ejCEHxOAazVVCDo35FGl4JdijZXcofEZBVJjZK1mCLy0QVazr3nOw=="
)

"""mTLS: the client certificate's subject is the principal. Its common name
(CN) is the subject, its organization (O) the tenant (default when absent),
each organizational unit (OU) naming a role a role."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from podium.identity.principal import DEFAULT_TENANT, Principal, Role

if TYPE_CHECKING:
    from cryptography import x509


@functools.lru_cache(maxsize=1024)
def principal_of_certificate(pem: bytes) -> Principal:
    # Imported here: only mTLS servers read certificates, and cryptography
    # costs megabytes to every server that does not.
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    certificate = x509.load_pem_x509_certificate(pem)
    subject = certificate.subject
    common = _values(subject, NameOID.COMMON_NAME)
    organization = _values(subject, NameOID.ORGANIZATION_NAME)
    roles = set()
    for unit in _values(subject, NameOID.ORGANIZATIONAL_UNIT_NAME):
        try:
            roles.add(Role.parse(unit))
        except ValueError:
            continue
    name = common[0] if common else subject.rfc4514_string()
    tenant = organization[0] if organization else DEFAULT_TENANT
    return Principal(f"certificate:{name}", tenant, frozenset(roles))


def _values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in name.get_attributes_for_oid(oid)]

"""BGP-LS exporter, IS-IS: FRR 8.4.4's text output, captured in the kitisis lab (before its loopbacks moved
to 198.18.251/24), parsed and exported. Two captures in data/:

- frr-8.4.4-isis-p2p.json: a1, a2, c1, c2, level 2 only, point-to-point links; c2 redistributes a static
  198.19.5.0/24 (route-map tag 4242, which FRR 8.4 does not carry) and 2001:db8:99::/48;
- frr-8.4.4-isis-lan-l1l2-mt.json: the same with a1 and c1 level-1-2, their link broadcast (a1 is the DIS,
  pseudonode 1981.8254.0001.03) and IPv6 in multi-topology ipv6-unicast (MT 2) on those two.

The wire of these NLRI through ExaBGP's decoder is checked in tests/integration/ingest/."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import struct
import sys
from pathlib import Path

import pytest

from appliance.lab.bgpls_exporter import (
    ISIS_COMMANDS,
    Exporter,
    ExportError,
    IsisTexts,
    LsdbView,
    Route,
    export_isis,
    export_lsdb,
    parse_isis,
)

DATA = Path(__file__).parent / "data"
P2P = DATA / "frr-8.4.4-isis-p2p.json"
LAN = DATA / "frr-8.4.4-isis-lan-l1l2-mt.json"
SYSID = {"a1": "198182540001", "a2": "198182540002", "c1": "198182540003", "c2": "198182540004"}


def texts(path: Path, router: str, **replace: str) -> IsisTexts:
    docs = json.loads(path.read_text())[router]
    raw = {cmd: replace.get(cmd, docs[cmd]) for cmd in ISIS_COMMANDS}
    return IsisTexts(json.loads(raw[ISIS_COMMANDS[0]]), *(raw[c] for c in ISIS_COMMANDS[1:]))


def decode(nlri: bytes) -> tuple[int, int, list[tuple[int, bytes]]]:
    """(NLRI type, Protocol-ID, [(TLV code, value)] of the body's top-level TLVs)."""
    kind, _ = struct.unpack("!HH", nlri[:4])
    protocol = nlri[4]
    body, tlvs = nlri[13:], []
    while body:
        code, length = struct.unpack("!HH", body[:4])
        tlvs.append((code, body[4 : 4 + length]))
        body = body[4 + length :]
    return kind, protocol, tlvs


def sub(value: bytes) -> dict[int, bytes]:
    out = {}
    while value:
        code, length = struct.unpack("!HH", value[:4])
        out[code] = value[4 : 4 + length]
        value = value[4 + length :]
    return out


def attrs(route: Route) -> dict[int, bytes]:
    return sub(route.attribute)


def by_kind(routes: dict[bytes, Route]) -> dict[tuple[int, int], list[bytes]]:
    out: dict[tuple[int, int], list[bytes]] = {}
    for nlri in routes:
        kind, protocol, _ = decode(nlri)
        out.setdefault((kind, protocol), []).append(nlri)
    return out


def prefix_of(nlri: bytes) -> str:
    _, _, tlvs = decode(nlri)
    reach = dict(tlvs)[265]
    length, raw = reach[0], reach[1:]
    size = 4 if nlri[1] == 3 else 16
    return str(ipaddress.ip_network((raw + bytes(size - len(raw)), length)))


# --- parsing ----------------------------------------------------------------------------------------------


def test_parse_p2p_capture() -> None:
    lsdb = parse_isis(texts(P2P, "a1"))
    assert lsdb.problems == []
    assert lsdb.system_id == "1981.8254.0001"
    assert sorted((lsp.node, lsp.level, lsp.own) for lsp in lsdb.lsps) == [
        ("1981.8254.0001", 2, True), ("1981.8254.0002", 2, False), ("1981.8254.0003", 2, False),
        ("1981.8254.0004", 2, False)]
    mine = next(lsp for lsp in lsdb.lsps if lsp.own)
    assert mine.hostname == "a1" and mine.te_router_id == "198.18.254.1" and mine.areas == ["49.0001"]
    assert sorted(mine.neighbors) == [("1981.8254.0003", 0, 10), ("1981.8254.0004", 0, 10)]
    assert len(mine.prefixes) == 8 and {p.mt_id for p in mine.prefixes} == {0}
    adjs = sorted((a.node, a.interface, a.levels, a.state, a.ipv4[0], a.ipv6[0]) for a in lsdb.adjacencies)
    assert adjs == [
        ("1981.8254.0003", "eth2", (2,), "Up", "198.18.74.2", "2001:db8:0:74::2"),
        ("1981.8254.0004", "eth3", (2,), "Up", "198.18.74.14", "2001:db8:0:77::1")]
    eth2 = lsdb.circuits["eth2"]
    assert (eth2.kind, eth2.metrics) == ("p2p", {2: 10})
    assert eth2.addresses == ["198.18.74.1/30", "2001:db8:0:74::1/64"]
    assert lsdb.circuits["eth1"].passive and lsdb.circuits["lo"].kind == "loopback"


def test_parse_lan_l1l2_mt_capture() -> None:
    lsdb = parse_isis(texts(LAN, "c1"))
    assert lsdb.problems == []
    assert {(lsp.node, lsp.pseudonode, lsp.level) for lsp in lsdb.lsps} >= {
        ("1981.8254.0001", 3, 1), ("1981.8254.0001", 3, 2)}  # the DIS a1's pseudonode LSPs, both levels
    lan = [a for a in lsdb.adjacencies if a.interface == "eth1"]
    assert sorted(a.levels for a in lan) == [(1,), (2,)]
    assert {a.lan_id for a in lan} == {("1981.8254.0001", 3)}  # printed "a1.03": resolved by hostname
    mine = [lsp for lsp in lsdb.lsps if lsp.own and lsp.pseudonode == 0]
    assert {p.mt_id for lsp in mine for p in lsp.prefixes if ":" in p.prefix} == {2}


def test_p2p_l1l2_adjacency_printed_as_level_3_counts_for_both_levels() -> None:
    lsdb = parse_isis(texts(LAN, "c2"))  # FRR 8.4 prints "Level: 3" for a1's L1L2 circuit to c2
    assert lsdb.problems == []
    assert {a.interface: a.levels for a in lsdb.adjacencies}["eth1"] == (1, 2)


# --- export -----------------------------------------------------------------------------------------------


def test_p2p_router_exports_node_links_prefixes_as_isis_level_2() -> None:
    routes = export_isis(parse_isis(texts(P2P, "a1")), 65010, "a1")
    kinds = {k: len(v) for k, v in by_kind(routes).items()}
    assert kinds == {(1, 2): 1, (2, 2): 2, (3, 2): 4, (4, 2): 4}  # Protocol-ID 2 = IS-IS level 2
    (node,) = by_kind(routes)[(1, 2)]
    _, _, tlvs = decode(node)
    local = sub(dict(tlvs)[256])
    assert local == {512: struct.pack("!I", 65010), 513: bytes(4), 515: bytes.fromhex(SYSID["a1"])}  # no area
    assert attrs(routes[node]) == {1026: b"a1", 1027: bytes.fromhex("490001"), 1028: bytes([198, 18, 254, 1])}
    links = {}
    for nlri in by_kind(routes)[(2, 2)]:
        d = dict(decode(nlri)[2])
        links[sub(d[257])[515].hex()] = (d[259], d[260], d[261], d[262], attrs(routes[nlri]))
    c1 = links[SYSID["c1"]]
    assert c1[:2] == (bytes([198, 18, 74, 1]), bytes([198, 18, 74, 2]))
    assert c1[2].hex() == "20010db8000000740000000000000001" and c1[3].hex().endswith("0002")
    assert c1[4] == {1028: bytes([198, 18, 254, 1]), 1030: bytes([198, 18, 254, 3]), 1095: b"\x00\x00\x0a",
                     1098: b"eth2"}
    assert set(links) == {SYSID["c1"], SYSID["c2"]}
    prefixes = {prefix_of(n): attrs(routes[n]) for k in ((3, 2), (4, 2)) for n in by_kind(routes)[k]}
    assert set(prefixes) == {"198.18.71.0/24", "198.18.74.0/30", "198.18.74.12/30", "198.18.254.1/32",
                             "2001:db8:0:71::/64", "2001:db8:0:74::/64", "2001:db8:0:77::/64",
                             "2001:db8:0:fffd::1/128"}
    assert prefixes["198.18.71.0/24"] == {1152: b"\x00", 1155: struct.pack("!I", 10), 1170: b"\x00"}


def test_redistributed_prefixes_carry_the_x_flag() -> None:
    routes = export_isis(parse_isis(texts(P2P, "c2")), 65010, "c2")
    flags = {prefix_of(n): attrs(r)[1170] for n, r in routes.items() if decode(n)[0] in (3, 4)}
    assert flags["198.19.5.0/24"] == b"\x80" and flags["2001:db8:99::/48"] == b"\x80"  # static, redistributed
    assert {p for p, f in flags.items() if f == b"\x80"} == {"198.19.5.0/24", "2001:db8:99::/48"}


def test_lan_dis_exports_pseudonode_links_and_both_levels() -> None:
    routes = export_isis(parse_isis(texts(LAN, "a1")), 65010, "a1")
    groups = by_kind(routes)
    assert {k: len(v) for k, v in groups.items()} == {
        (1, 1): 1, (2, 1): 3, (3, 1): 4, (4, 1): 4, (1, 2): 1, (2, 2): 4, (3, 2): 4, (4, 2): 4}
    psn = bytes.fromhex(SYSID["a1"] + "03")  # 7-octet IGP Router-ID: system ID + pseudonode ID
    ends = set()
    for nlri in groups[(2, 1)]:
        d = dict(decode(nlri)[2])
        ends.add((sub(d[256])[515].hex(), sub(d[257])[515].hex(), 259 in d, 260 in d))
    assert ends == {
        (SYSID["a1"], psn.hex(), True, False),   # a1 -> LAN: its address, no neighbour address
        (psn.hex(), SYSID["a1"], False, False),  # LAN -> a1 and LAN -> c1: a1 is the DIS
        (psn.hex(), SYSID["c1"], False, False),
    }
    v6 = [n for n in groups[(4, 1)]]
    assert all(dict(decode(n)[2])[263] == b"\x00\x02" for n in v6)  # MT-ID 2 (ipv6-unicast)


def test_lan_non_dis_exports_its_half_only() -> None:
    routes = export_isis(parse_isis(texts(LAN, "c1")), 65010, "c1")
    l1_links = [dict(decode(n)[2]) for n, _ in routes.items() if decode(n)[:2] == (2, 1)]
    assert len(l1_links) == 1 and sub(l1_links[0][257])[515].hex() == SYSID["a1"] + "03"
    assert l1_links[0][259] == bytes([198, 18, 74, 2])


def test_level_2_does_not_claim_prefixes_leaked_up_from_level_1() -> None:
    lsdb = parse_isis(texts(LAN, "c1"))
    leaked = next(lsp for lsp in lsdb.lsps if lsp.own and lsp.level == 2 and lsp.pseudonode == 0)
    leaked.prefixes.append(type(leaked.prefixes[0])("198.18.71.0/24", 20))  # a1's S1, as if leaked L1 -> L2
    routes = export_isis(lsdb, 65010, "c1")
    l2 = {prefix_of(n) for n in routes if decode(n)[:2] == (3, 2)}
    assert "198.18.71.0/24" not in l2 and "198.18.73.0/24" in l2


def test_one_way_adjacency_is_not_a_link() -> None:
    lsdb = parse_isis(texts(P2P, "a1"))
    for lsp in lsdb.lsps:
        if lsp.node == "1981.8254.0003":
            lsp.neighbors = [n for n in lsp.neighbors if n[0] != "1981.8254.0001"]  # c1 does not list a1 yet
    routes = export_isis(lsdb, 65010, "a1")
    remotes = {sub(dict(decode(n)[2])[257])[515].hex() for n in routes if decode(n)[0] == 2}
    assert remotes == {SYSID["c2"]}


# --- robustness: weird lines are skipped and named, never fatal ------------------------------------------


def test_bad_lines_are_reported_and_the_rest_is_exported() -> None:
    docs = json.loads(P2P.read_text())["a1"]
    db = docs["show isis database detail"].replace(
        "  Extended IP Reachability: 198.18.71.0/24 (Metric: 10)",
        "  Extended IP Reachability: 198.18.71.0/24 (Metric: 10)\n"
        "  Extended IP Reachability: 300.1.1.0/24 (Metric: 10)\n"
        "  Extended Reachability: nosuchhost.00 (Metric: 10)\n"
        "  TE Router ID: banana",
    ).replace("\na2.00-00", "\nzz.00-00 junk\n  Extended IP Reachability: 10.0.0.0/8 (Metric: 1)\na2.00-00")
    nbr = docs["show isis neighbor detail"].replace("      198.18.74.2", "      198.18.74.2.9")
    lsdb = parse_isis(texts(P2P, "a1", **{"show isis database detail": db, "show isis neighbor detail": nbr}))
    joined = "\n".join(lsdb.problems)
    assert "show isis database detail: line" in joined and "300.1.1.0/24" in joined
    assert "'nosuchhost.00'" in joined and "banana" in joined and "not an LSP header" in joined
    assert "show isis neighbor detail: line" in joined and "neighbour 'c1': bad address" in joined
    routes = export_isis(lsdb, 65010, "a1")
    kinds = {k: len(v) for k, v in by_kind(routes).items()}
    assert kinds[(1, 2)] == 1 and kinds[(3, 2)] == 4 and kinds[(2, 2)] == 2  # the rest still there
    to_c1 = next(dict(decode(n)[2]) for n in routes if decode(n)[0] == 2 and SYSID["c1"] in n.hex())
    assert 260 not in to_c1 and 262 in to_c1  # c1's IPv4 address was unreadable: the link keeps IPv6
    assert "10.0.0.0/8" not in {prefix_of(n) for n in routes if decode(n)[0] == 3}  # the bad LSP's body


def test_unknown_hostname_names_the_lsp() -> None:
    docs = json.loads(P2P.read_text())["a1"]
    host = "\n".join(line for line in docs["show isis hostname"].splitlines() if " c2" not in line)
    lsdb = parse_isis(texts(P2P, "a1", **{"show isis hostname": host}))
    assert any("LSP 'c2': unknown hostname" in p for p in lsdb.problems)
    assert any("neighbour 'c2'" in p for p in lsdb.problems)


def test_no_system_id_exports_nothing() -> None:
    lsdb = parse_isis(IsisTexts({}, "", "", "", ""))
    assert lsdb.problems == ["show isis summary json: no system-id (isisd not running or no `net`)"]
    assert export_isis(lsdb, 65010, "x") == {}


@pytest.mark.parametrize("seed", range(30))
def test_mutated_output_never_raises(seed: int) -> None:
    rnd = random.Random(seed)
    docs = json.loads(LAN.read_text())[rnd.choice(["a1", "c1", "c2"])]
    mutated = {}
    for cmd in ISIS_COMMANDS[1:]:
        lines = docs[cmd].splitlines()
        for _ in range(rnd.randint(1, 12)):
            i = rnd.randrange(len(lines))
            op = rnd.randrange(4)
            if op == 0:
                del lines[i]
            elif op == 1:
                lines.insert(i, lines[rnd.randrange(len(lines))])
            elif op == 2:
                cut = rnd.randrange(len(lines[i]) + 1)
                lines[i] = lines[i][:cut]
            else:
                alphabet = " .:-/()*0123456789abcdefxyzLANid,"
                lines[i] = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 40)))
        mutated[cmd] = "\n".join(lines)
    lsdb = parse_isis(texts(LAN, "a1", **mutated))
    export_isis(lsdb, 65010, "a1")  # must not raise, whatever it skipped


# --- the whole exporter view: OSPF unchanged, IS-IS added, IGP chosen by what answers -------------------


def test_export_lsdb_with_isis_only_adds_ebgp_sessions_and_ospf_is_untouched() -> None:
    view = LsdbView({}, {}, isis=texts(P2P, "a1"))
    problems: list[str] = []
    routes = export_lsdb(view, 65010, "a1", problems)
    assert problems == [] and {decode(n)[1] for n in routes} == {2}
    ospf = json.loads((DATA / "frr-8.4.4-sav-basic-ospf.json").read_text())["r3"]
    ospf_view = LsdbView(*(ospf[f"show ip ospf {c} json"] for c in ("database router", "database network",
                                                                      "database external", "interface")))
    assert export_lsdb(ospf_view, 65000, "r3") == export_lsdb(ospf_view, 65000, "r3", [])
    assert {decode(n)[1] for n in export_lsdb(ospf_view, 65000, "r3")} == {3}


FAKE_VTYSH = """
import json, sys
docs = json.load(open(sys.argv[1]))[sys.argv[2]]
cmd = sys.argv[sys.argv.index("-c") + 1]
sys.stdout.write(docs.get(cmd, "% ospfd is not running" if "ospf" in cmd else ""))
"""


def fake_vtysh(tmp_path: Path, data: Path, router: str) -> list[str]:
    script = tmp_path / "vtysh.py"
    script.write_text(FAKE_VTYSH)
    return [sys.executable, str(script), str(data), router]


def test_exporter_reads_isis_when_no_ospfd_answers(tmp_path: Path) -> None:
    exp = Exporter(vtysh=fake_vtysh(tmp_path, P2P, "c1"), peer="192.0.2.1", local_as=65010, name="c1")
    view = asyncio.run(exp.read_view())
    assert view.isis is not None and view.router == {}
    assert {decode(n)[1] for n in export_lsdb(view, 65010, "c1")} == {2}


def test_igp_flag_isis_without_isisd_is_a_clear_error(tmp_path: Path) -> None:
    exp = Exporter(vtysh=fake_vtysh(tmp_path, DATA / "frr-8.4.4-sav-basic-ospf.json", "r3"), peer="192.0.2.1",
                   local_as=65000, name="r3", igp="isis")
    with pytest.raises(ExportError, match=r"router r3: --igp isis but isisd gives no system ID"):
        asyncio.run(exp.read_view())
    ospf_only = Exporter(vtysh=exp.vtysh, peer="192.0.2.1", local_as=65000, name="r3", igp="ospf")
    assert asyncio.run(ospf_only.read_view()).isis is None

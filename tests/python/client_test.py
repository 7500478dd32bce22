#!/usr/bin/python3
"""An external client of the vrouter-dp control API, written against the repository's
.proto with grpcio: generates the stubs at run time, programs interfaces, next-hops
and routes (one by one and as a packed route set), reads them back, and checks that
a bad batch is refused with field errors and changes nothing.

Usage: client_test.py PROTO_ROOT SOCKET_PATH
Exits 0 on success; prints the failure and exits 1 otherwise.
"""

import importlib
import ipaddress
import os
import struct
import subprocess
import sys
import tempfile


def generate(proto_root, out):
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        "-I", proto_root,
        "--python_out", out,
        "--grpc_python_out", out,
        os.path.join(proto_root, "vrouter", "v1", "vrouter.proto"),
    ]
    subprocess.run(cmd, check=True)
    # Make vrouter/ and vrouter/v1/ importable packages.
    for d in ("vrouter", os.path.join("vrouter", "v1")):
        open(os.path.join(out, d, "__init__.py"), "a").close()
    sys.path.insert(0, out)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    proto_root, sock = sys.argv[1], sys.argv[2]
    import grpc  # noqa: F401  (fails loudly when python3-grpcio is missing)

    with tempfile.TemporaryDirectory() as out:
        generate(proto_root, out)
        pb = importlib.import_module("vrouter.v1.vrouter_pb2")
        rpc = importlib.import_module("vrouter.v1.vrouter_pb2_grpc")
        channel = grpc.insecure_channel("unix:" + sock)
        stub = rpc.VrouterStub(channel)

        changes = [
            pb.Change(add_interface=pb.Interface(
                id=0, type=pb.VIF_TYPE_PHYSICAL, transport=pb.TRANSPORT_PMD, port=0,
                mac="02:00:00:00:01:00", ipv4=["192.0.2.1"])),
            pb.Change(add_interface=pb.Interface(
                id=1, type=pb.VIF_TYPE_VIRTUAL, transport=pb.TRANSPORT_PMD, port=1,
                mac="02:00:00:00:02:01", vrf=3, ipv4=["10.3.0.1"])),
            pb.Change(add_nexthop=pb.NextHop(
                id=10, type=pb.NH_TYPE_ENCAP, vif=1, dmac="02:00:00:00:02:01")),
            pb.Change(add_nexthop=pb.NextHop(
                id=11, type=pb.NH_TYPE_TUNNEL, tunnel=pb.TUNNEL_MPLS_UDP, vif=0,
                dmac="02:00:00:00:09:09", tunnel_src="192.0.2.1", tunnel_dst="192.0.2.50")),
        ]
        for i in range(256):
            changes.append(pb.Change(add_route=pb.Route(
                vrf=3, prefix="10.%d.%d.0/24" % (100 + i // 256, i % 256), nh=11,
                label=1000 + i, label_valid=True)))
        changes.append(pb.Change(add_route=pb.Route(vrf=3, prefix="10.3.0.1/32", nh=10)))
        changes.append(pb.Change(add_route=pb.Route(vrf=3, prefix="fd00:3::/64", nh=11, label=7, label_valid=True)))

        # Send it as a stream of chunks: one atomic batch.
        def chunks():
            for k in range(0, len(changes), 100):
                yield pb.Batch(changes=changes[k:k + 100])

        r = stub.ApplyStream(chunks())
        check(r.applied == len(changes), "applied %d of %d" % (r.applied, len(changes)))

        nh = stub.GetNextHop(pb.NextHopKey(id=11))
        check(nh.type == pb.NH_TYPE_TUNNEL and nh.tunnel_dst == "192.0.2.50", "next-hop 11: %s" % nh)
        rt = stub.GetRoute(pb.RouteKey(vrf=3, prefix="10.100.7.0/24"))
        check(rt.nh == 11 and rt.label_valid and rt.label == 1007, "route: %s" % rt)
        rt = stub.GetRoute(pb.RouteKey(vrf=3, prefix="10.3.0.1/32"))
        check(rt.nh == 10 and not rt.label_valid, "host route: %s" % rt)

        routes = []
        pages = 0
        for page in stub.DumpRoutes(pb.DumpRoutesRequest(vrf=3, page_size=100)):
            pages += 1
            routes.extend(page.routes)
        check(len(routes) == 258, "dumped %d routes" % len(routes))
        check(pages == 3, "dumped in %d pages" % pages)
        check(routes[-1].prefix == "fd00:3::/64", "last route %s" % routes[-1].prefix)
        nhs = [n.id for p in stub.DumpNextHops(pb.DumpRequest()) for n in p.nexthops]
        check(nhs == [0, 10, 11], "next-hops %s" % nhs)

        # A half-bad batch is refused as a whole, with the field named.
        before = stub.GetInfo(pb.GetInfoRequest()).generation
        bad = pb.Batch(changes=[
            pb.Change(add_route=pb.Route(vrf=3, prefix="10.200.0.0/16", nh=10)),
            pb.Change(add_route=pb.Route(vrf=3, prefix="10.201.0.1/16", nh=10)),
        ])
        try:
            stub.Apply(bad)
            raise AssertionError("bad batch accepted")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "code %s" % e.code())
            check("changes[1].add_route.prefix" in e.details(), "details %s" % e.details())
            md = dict(e.trailing_metadata() or ())
            check("grpc-status-details-bin" in md, "no status details in %s" % list(md))
        check(stub.GetInfo(pb.GetInfoRequest()).generation == before, "bad batch changed the state")
        try:
            stub.GetRoute(pb.RouteKey(vrf=3, prefix="10.200.0.0/16"))
            raise AssertionError("route of a refused batch exists")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, "code %s" % e.code())

        # Dangling reference.
        try:
            stub.Apply(pb.Batch(changes=[pb.Change(add_route=pb.Route(vrf=3, prefix="10.9.0.0/16", nh=99))]))
            raise AssertionError("dangling route accepted")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.FAILED_PRECONDITION, "code %s" % e.code())

        # Delete and read back.
        stub.Apply(pb.Batch(changes=[pb.Change(del_route=pb.RouteKey(vrf=3, prefix="10.3.0.1/32"))]))
        left = sum(len(p.routes) for p in stub.DumpRoutes(pb.DumpRoutesRequest(vrf=3)))
        check(left == 257, "%d routes after delete" % left)

        # A packed route set: 1000 /32s in one change, read back, deleted.
        addrs = b"".join(struct.pack("!I", int(ipaddress.IPv4Address("10.50.0.0")) + i) for i in range(1000))
        r = stub.Apply(pb.Batch(changes=[pb.Change(add_routes=pb.RouteSet(
            vrf=3, family=pb.FAMILY_INET, addrs=addrs, prefix_lens=bytes([32] * 1000),
            nhs=[11], labels=[500]))]))
        check(r.applied == 1000, "route set applied %d" % r.applied)
        rt = stub.GetRoute(pb.RouteKey(vrf=3, prefix="10.50.3.231/32"))
        check((rt.nh, rt.label, rt.label_valid) == (11, 500, True), "set route %s" % rt)
        stub.Apply(pb.Batch(changes=[pb.Change(del_routes=pb.RouteSet(
            vrf=3, family=pb.FAMILY_INET, addrs=addrs, prefix_lens=bytes([32] * 1000)))]))
        left = sum(len(p.routes) for p in stub.DumpRoutes(pb.DumpRoutesRequest(vrf=3)))
        check(left == 257, "%d routes after the set's delete" % left)
        print("python client: ok (%d routes programmed and read back)" % len(routes))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report and fail
        print("python client: FAILED: %r" % (e,), file=sys.stderr)
        sys.exit(1)

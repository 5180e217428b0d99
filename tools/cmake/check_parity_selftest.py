#!/usr/bin/env python3
"""Proves tools/cmake/check_parity.py can fail: each check over a small
fixture, once agreeing with Bazel and once with a known disagreement (a file
in one build only, a link edge up the layers, an edge Bazel does not have,
the thread pool pulling in the poller)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_parity  # noqa: E402

LAYERS = check_parity.load_layers()

GRAPH = r'''digraph "MillIO" {
    "node0" [ label = "millio_base\n(MillIO::base)", shape = octagon ];
    "node1" [ label = "millio_threadpool\n(MillIO::threadpool)", shape = octagon ];
    "node2" [ label = "absl::status", shape = pentagon ];
    "node3" [ label = "millio_poll\n(MillIO::poll)", shape = octagon ];
    "node1" -> "node0" [ style = dotted ] // millio_threadpool -> millio_base
    "node1" -> "node2" [ style = dotted ] // millio_threadpool -> absl::status
    "node1" -> "node1"
    "node3" -> "node0"
}
'''


class LayersTest(unittest.TestCase):

    def test_the_table_allows_downward_and_refuses_upward(self):
        self.assertTrue(check_parity.allowed(LAYERS, "net", "poll"))
        self.assertTrue(check_parity.allowed(LAYERS, "net/testing", "base"))
        self.assertTrue(check_parity.allowed(LAYERS, "examples/echo", "tls"))
        self.assertTrue(check_parity.allowed(LAYERS, "bench/peers", "net"))
        self.assertFalse(check_parity.allowed(LAYERS, "threadpool", "poll"))
        self.assertFalse(check_parity.allowed(LAYERS, "reactor", "net"))
        self.assertFalse(check_parity.allowed(LAYERS, "base", "threadpool"))

    def test_an_upward_edge_is_reported(self):
        label_of = {"millio_threadpool": "threadpool", "millio_poll": "poll",
                    "millio_base": "base"}
        ok = {"millio_threadpool": {"MillIO::base", "absl::status"}}
        self.assertEqual(check_parity.layer_problems(ok, label_of, LAYERS),
                         [])
        up = {"millio_threadpool": {"MillIO::base", "MillIO::poll"}}
        problems = check_parity.layer_problems(up, label_of, LAYERS)
        self.assertEqual(len(problems), 1)
        self.assertIn("millio_threadpool (threadpool) links millio_poll",
                      problems[0])


class GraphTest(unittest.TestCase):

    def test_parses_cmake_graphviz_without_self_edges(self):
        edges = check_parity.parse_graphviz(GRAPH)
        self.assertEqual(edges["millio_threadpool"],
                         {"millio_base", "absl::status"})
        self.assertEqual(edges["millio_poll"], {"millio_base"})

    def test_threadpool_closure(self):
        edges = check_parity.parse_graphviz(GRAPH)
        self.assertEqual(check_parity.threadpool_problems(edges), [])
        edges["millio_base"] = {"millio_poll"}
        self.assertEqual(check_parity.threadpool_problems(edges),
                         ["MillIO::threadpool links millio_poll"])

    def test_edges_must_match_bazel(self):
        edges = check_parity.parse_graphviz(GRAPH)
        want = {"millio_threadpool": {"millio_base"}, "millio_base": set(),
                "millio_poll": {"millio_base"}}
        self.assertEqual(check_parity.edge_problems(want, edges), [])
        want["millio_poll"] = set()
        problems = check_parity.edge_problems(want, edges)
        self.assertEqual(len(problems), 1)
        self.assertIn("millio_poll links ['millio_base']", problems[0])


class SourcesTest(unittest.TestCase):

    def test_a_file_in_one_build_only_is_reported(self):
        expected = {"millio_net": {"net/a.cc", "net/a.h"},
                    "millio_bench_hiredis": set()}
        model = {"millio_net": {"type": "STATIC_LIBRARY",
                                "sources": {"net/a.cc", "net/a.h"}}}
        self.assertEqual(check_parity.source_problems(expected, model), [])
        model["millio_net"]["sources"] = {"net/a.cc", "net/b.cc"}
        self.assertEqual(check_parity.source_problems(expected, model), [
            "millio_net: net/a.h is in Bazel, not in CMake",
            "millio_net: net/b.cc is in CMake, not in Bazel"])
        model["millio_extra"] = {"type": "EXECUTABLE", "sources": {"x.cc"}}
        self.assertIn("CMake target millio_extra has no Bazel counterpart",
                      check_parity.source_problems(expected, model))
        del model["millio_net"]
        self.assertIn("no CMake target millio_net for a Bazel target",
                      check_parity.source_problems(expected, model))


if __name__ == "__main__":
    unittest.main()

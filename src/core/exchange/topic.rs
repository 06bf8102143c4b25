//! Topic exchange: binding keys are patterns of dot-separated words, where `*` matches
//! exactly one word and `#` matches zero or more. Keys split on every `.` as RabbitMQ
//! splits them, so `""` is one empty word and `a..b` has an empty middle word.
//!
//! Bindings live in a trie of words, one edge per literal word plus a `*` and a `#`
//! edge per node; routing walks the trie once, with no allocation for keys of up to
//! 16 words.

use super::Routing;
use crate::core::error::Result;
use crate::core::fxhash::FxMap;
use crate::core::ids::Destination;
use crate::core::value::Table;

const ROOT: usize = 0;

#[derive(Debug, Default)]
struct Node {
    parent: usize,
    /// The edge from the parent: a literal word, `*` or `#`.
    edge: Box<str>,
    words: FxMap<Box<str>, usize>,
    star: Option<usize>,
    hash: Option<usize>,
    /// One entry per binding that ends here.
    dests: Vec<Destination>,
}

impl Node {
    fn is_unused(&self) -> bool {
        self.dests.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }
}

#[derive(Debug)]
pub struct TopicRouter {
    /// Arena of nodes; `nodes[ROOT]` is the root. Pruned nodes go to `free`.
    nodes: Vec<Node>,
    free: Vec<usize>,
}

impl Default for TopicRouter {
    fn default() -> Self {
        TopicRouter { nodes: vec![Node::default()], free: Vec::new() }
    }
}

impl TopicRouter {
    fn child(&self, node: usize, word: &str) -> Option<usize> {
        let n = &self.nodes[node];
        match word {
            "*" => n.star,
            "#" => n.hash,
            w => n.words.get(w).copied(),
        }
    }

    fn child_or_insert(&mut self, node: usize, word: &str) -> usize {
        if let Some(c) = self.child(node, word) {
            return c;
        }
        let fresh = Node { parent: node, edge: word.into(), ..Default::default() };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id] = fresh;
                id
            }
            None => {
                self.nodes.push(fresh);
                self.nodes.len() - 1
            }
        };
        let n = &mut self.nodes[node];
        match word {
            "*" => n.star = Some(id),
            "#" => n.hash = Some(id),
            w => {
                n.words.insert(w.into(), id);
            }
        }
        id
    }

    /// Detaches unused nodes from `node` up towards the root, so churn does not grow memory.
    fn prune(&mut self, mut node: usize) {
        while node != ROOT && self.nodes[node].is_unused() {
            let parent = self.nodes[node].parent;
            let edge = std::mem::take(&mut self.nodes[node].edge);
            let p = &mut self.nodes[parent];
            match &*edge {
                "*" => p.star = None,
                "#" => p.hash = None,
                w => {
                    p.words.remove(w);
                }
            }
            self.free.push(node);
            node = parent;
        }
    }

    /// Number of live trie nodes (for tests of pruning).
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Collects the destinations of every pattern matching `words[pos..]` from `node`.
    /// `seen` records the (`#` node, position) states already walked: with several `#`
    /// in a pattern the same state is reachable many ways, and walking it once keeps
    /// routing linear in the key length per `#` instead of exponential.
    fn walk(
        &self,
        node: usize,
        words: &[&str],
        pos: usize,
        seen: &mut Vec<(usize, usize)>,
        out: &mut Vec<Destination>,
    ) {
        let n = &self.nodes[node];
        if pos == words.len() {
            out.extend_from_slice(&n.dests);
        } else {
            if let Some(&c) = n.words.get(words[pos]) {
                self.walk(c, words, pos + 1, seen, out);
            }
            if let Some(s) = n.star {
                self.walk(s, words, pos + 1, seen, out);
            }
        }
        if let Some(h) = n.hash {
            // `#` takes zero or more of the remaining words.
            for next in pos..=words.len() {
                if !seen.contains(&(h, next)) {
                    seen.push((h, next));
                    self.walk(h, words, next, seen, out);
                }
            }
        }
    }
}

impl Routing for TopicRouter {
    fn validate_binding(&self, _key: &str, _args: &Table) -> Result<()> {
        Ok(())
    }

    fn add_binding(&mut self, dest: Destination, key: &str, _args: &Table) {
        let mut node = ROOT;
        for word in key.split('.') {
            node = self.child_or_insert(node, word);
        }
        self.nodes[node].dests.push(dest);
    }

    fn remove_binding(&mut self, dest: Destination, key: &str, _args: &Table) {
        let mut node = ROOT;
        for word in key.split('.') {
            match self.child(node, word) {
                Some(c) => node = c,
                None => return,
            }
        }
        let dests = &mut self.nodes[node].dests;
        if let Some(i) = dests.iter().position(|d| *d == dest) {
            dests.swap_remove(i);
            self.prune(node);
        }
    }

    fn route(&self, routing_key: &str, _headers: &Table, out: &mut Vec<Destination>) {
        let mut seen = Vec::new();
        let mut inline = [""; 16];
        let mut n = 0;
        for w in routing_key.split('.') {
            if n == inline.len() {
                let words: Vec<&str> = routing_key.split('.').collect();
                return self.walk(ROOT, &words, 0, &mut seen, out);
            }
            inline[n] = w;
            n += 1;
        }
        self.walk(ROOT, &inline[..n], 0, &mut seen, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::QueueId;

    fn q(i: u32) -> Destination {
        Destination::Queue(QueueId(i))
    }

    fn router(bindings: &[(&str, u32)]) -> TopicRouter {
        let mut r = TopicRouter::default();
        for (k, d) in bindings {
            r.add_binding(q(*d), k, &Table::new());
        }
        r
    }

    fn routes(r: &TopicRouter, key: &str) -> Vec<u32> {
        let mut out = Vec::new();
        r.route(key, &Table::new(), &mut out);
        let mut ids: Vec<u32> = out
            .into_iter()
            .map(|d| match d {
                Destination::Queue(QueueId(i)) => i,
                Destination::Exchange(_) => unreachable!(),
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn matches(pattern: &str, key: &str) -> bool {
        !routes(&router(&[(pattern, 1)]), key).is_empty()
    }

    #[test]
    fn exact_words_match_only_themselves() {
        assert!(matches("a.b.c", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b.d"));
    }

    #[test]
    fn star_matches_exactly_one_word() {
        assert!(matches("*.error", "auth.error"));
        assert!(!matches("*.error", "error"), "* never matches zero words");
        assert!(!matches("*.error", "a.b.error"));
        assert!(matches("a.*.c", "a..c"), "an empty word is a word");
        assert!(matches("*", ""), "the empty key is one empty word");
    }

    #[test]
    fn hash_matches_zero_or_more_words_anywhere() {
        assert!(matches("#", ""));
        assert!(matches("#", "a.b.c"));
        assert!(matches("a.#", "a"), "# may match zero words");
        assert!(matches("a.#", "a.b.c"));
        assert!(!matches("a.#", "b.a"));
        assert!(matches("#.c", "c"));
        assert!(matches("#.c", "a.b.c"));
        assert!(matches("a.#.c", "a.c"));
        assert!(matches("a.#.c", "a.b.b.c"));
        assert!(!matches("a.#.c", "a.b.b"));
        assert!(matches("#.#", "a.b"));
        assert!(matches("a.#.#.b", "a.x.y.b"));
        assert!(matches("*.#", "a"));
        assert!(matches("*.#", ""), "'' is one empty word, which * takes");
        assert!(!matches("*.*.#", ""));
    }

    #[test]
    fn empty_words_are_words() {
        assert!(matches("a..b", "a..b"));
        assert!(!matches("a..b", "a.b"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(matches("a.", "a."));
    }

    #[test]
    fn each_binding_routes_and_removing_one_leaves_its_twin() {
        let mut r = router(&[("a.*", 1), ("a.*", 1), ("a.#", 2), ("#", 3)]);
        assert_eq!(routes(&r, "a.b"), [1, 2, 3]);
        r.remove_binding(q(1), "a.*", &Table::new());
        assert_eq!(routes(&r, "a.b"), [1, 2, 3], "the same binding with other arguments still routes");
        r.remove_binding(q(1), "a.*", &Table::new());
        assert_eq!(routes(&r, "a.b"), [2, 3]);
        r.remove_binding(q(9), "a.#", &Table::new()); // not bound: no effect
        assert_eq!(routes(&r, "a.b"), [2, 3]);
    }

    #[test]
    fn removing_bindings_prunes_the_trie() {
        let mut r = TopicRouter::default();
        let keys = ["a.b.c", "a.*.d", "#.e", "x.y.#.z"];
        for k in keys {
            r.add_binding(q(1), k, &Table::new());
        }
        assert!(r.node_count() > 1);
        for k in keys {
            r.remove_binding(q(1), k, &Table::new());
        }
        assert_eq!(r.node_count(), 1, "only the root is left");
        let arena = r.nodes.len();
        for _ in 0..100 {
            r.add_binding(q(2), "p.q.r", &Table::new());
            r.remove_binding(q(2), "p.q.r", &Table::new());
        }
        assert_eq!(r.nodes.len(), arena, "freed nodes are reused");
    }

    #[test]
    fn many_hashes_route_in_reasonable_time() {
        let r = router(&[("#.#.#.#.#.#.#.#.z", 1)]);
        let key = vec!["a"; 60].join(".");
        assert!(routes(&r, &key).is_empty());
        assert_eq!(routes(&r, &format!("{key}.z")), [1]);
    }

    #[test]
    fn long_keys_beyond_the_inline_buffer_route() {
        let key = vec!["w"; 40].join(".");
        let r = router(&[("#.w", 1), (key.as_str(), 2)]);
        assert_eq!(routes(&r, &key), [1, 2]);
    }
}

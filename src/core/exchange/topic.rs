//! Topic exchange: binding keys are patterns over the dot-separated words of routing
//! keys, where `*` stands for exactly one word and `#` for zero or more.
//!
//! The bindings form a trie over words, as RabbitMQ's do (rabbit_db_topic_exchange.erl):
//! routing walks the trie along the routing key, following the literal child, the `*`
//! child and the `#` child of each node it reaches. A `#` node matches zero or more
//! words, so it is tried at every later position of the key.

use super::Routing;
use crate::core::error::Result;
use crate::core::fxhash::FxMap;
use crate::core::ids::Destination;
use crate::core::value::Table;

#[derive(Debug, Default)]
pub struct TopicRouter {
    root: Node,
    vocabulary: Vocabulary,
}

/// A word of the binding keys, by number: routing looks each routing-key word up once,
/// then walks the trie comparing numbers instead of hashing and comparing strings.
type WordId = u32;

/// A routing-key word no binding key contains.
const UNKNOWN_WORD: WordId = WordId::MAX;

/// The literal words of the binding keys, each counted by the trie edges labelled with it
/// so that a word goes when its last edge does.
#[derive(Debug, Default)]
struct Vocabulary {
    ids: FxMap<Box<str>, (WordId, usize)>,
    free: Vec<WordId>,
}

impl Vocabulary {
    fn id(&self, word: &str) -> WordId {
        self.ids.get(word).map_or(UNKNOWN_WORD, |&(id, _)| id)
    }

    /// The id of `word` for a new edge.
    fn add_edge(&mut self, word: &str) -> WordId {
        if let Some((id, edges)) = self.ids.get_mut(word) {
            *edges += 1;
            return *id;
        }
        // Ids stay dense: with none free, 0..len are all taken.
        let id = self.free.pop().unwrap_or(self.ids.len() as WordId);
        self.ids.insert(word.into(), (id, 1));
        id
    }

    fn remove_edge(&mut self, word: &str) {
        if let Some((id, edges)) = self.ids.get_mut(word) {
            *edges -= 1;
            if *edges == 0 {
                self.free.push(*id);
                self.ids.remove(word);
            }
        }
    }
}

/// A trie node: the binding-key prefix that leads to it is the path from the root.
#[derive(Debug, Default)]
struct Node {
    words: FxMap<WordId, Node>,
    star: Option<Box<Node>>,
    hash: Option<Box<Node>>,
    /// One entry per binding whose key ends here. Bindings that differ only in their
    /// arguments share (key, destination), so a destination may appear more than once
    /// and removing one binding leaves the others routing.
    dests: Vec<Destination>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.dests.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }

    fn child_or_insert(&mut self, vocabulary: &mut Vocabulary, word: &str) -> &mut Node {
        match word {
            "*" => self.star.get_or_insert_with(Box::default),
            "#" => self.hash.get_or_insert_with(Box::default),
            _ => {
                // Each edge holds its word in the vocabulary.
                let id = match vocabulary.id(word) {
                    id if self.words.contains_key(&id) => id,
                    _ => vocabulary.add_edge(word),
                };
                self.words.entry(id).or_default()
            }
        }
    }

    /// Removes one binding of `dest` whose key ends at the end of `words`, and drops
    /// the children this leaves empty, so that memory does not grow with binding churn.
    fn remove<'k>(&mut self, vocabulary: &mut Vocabulary, mut words: impl Iterator<Item = &'k str>, dest: Destination) {
        let Some(word) = words.next() else {
            if let Some(i) = self.dests.iter().position(|d| *d == dest) {
                self.dests.swap_remove(i);
            }
            return;
        };
        let slot = match word {
            "*" => &mut self.star,
            "#" => &mut self.hash,
            _ => {
                let id = vocabulary.id(word);
                if let Some(child) = self.words.get_mut(&id) {
                    child.remove(vocabulary, words, dest);
                    if child.is_empty() {
                        self.words.remove(&id);
                        vocabulary.remove_edge(word);
                    }
                }
                return;
            }
        };
        if let Some(child) = slot {
            child.remove(vocabulary, words, dest);
            if child.is_empty() {
                *slot = None;
            }
        }
    }

    #[cfg(test)]
    fn node_count(&self) -> usize {
        1 + self.words.values().map(Node::node_count).sum::<usize>()
            + self.star.as_ref().map_or(0, |n| n.node_count())
            + self.hash.as_ref().map_or(0, |n| n.node_count())
    }
}

/// The words of a binding or routing key. Like RabbitMQ, "" has no words at all (not
/// one empty word), so it binds at the root and `*` does not match it; every '.'
/// separates two words, so "a..b" has an empty middle word.
fn words(key: &str) -> impl Iterator<Item = &str> {
    (!key.is_empty()).then(|| key.split('.')).into_iter().flatten()
}

/// Routing keys up to this many words (most of them) have their word ids on the stack.
const INLINE_WORDS: usize = 16;

/// One routing key's walk through the trie. Positions are indexes into `words`; the
/// position `words.len()` means every word has been matched.
struct Walk<'a> {
    words: &'a [WordId],
    /// `#` nodes below another `#` node, each with the smallest position it was entered
    /// at. Such a node can be reached at many positions (`#.a.#` against `a.a.a.a`);
    /// since it already tries every position after the one it was entered at, entering it
    /// again later can add nothing. Without this, k such nodes cost O(words^k).
    /// Only nested `#` nodes need it (a `#` node under literal and `*` words alone is
    /// reached at one position at most), so most routes never allocate it.
    nested_hashes: Vec<(*const Node, usize)>,
    out: &'a mut Vec<Destination>,
}

impl Walk<'_> {
    /// Matches the words from position `at` on against the patterns below `node`.
    fn visit(&mut self, node: &Node, at: usize, under_hash: bool, follow_hash: bool) {
        match self.words.get(at) {
            None => self.out.extend_from_slice(&node.dests),
            Some(&word) => {
                if let Some(child) = node.words.get(&word) {
                    self.visit(child, at + 1, under_hash, true);
                }
                if let Some(star) = &node.star {
                    self.visit(star, at + 1, under_hash, true);
                }
            }
        }
        if follow_hash {
            if let Some(hash) = &node.hash {
                self.enter_hash(hash, at, under_hash);
            }
        }
    }

    /// `#` matches zero or more words: `hash`'s patterns are tried at `from` and at every
    /// later position of the key.
    fn enter_hash(&mut self, hash: &Node, from: usize, nested: bool) {
        let mut until = self.words.len() + 1;
        if nested {
            let id: *const Node = hash;
            match self.nested_hashes.iter_mut().find(|(n, _)| *n == id) {
                None => self.nested_hashes.push((id, from)),
                // The walk's order enters a nested `#` node at its smallest position first,
                // but this stays correct should that change: explore only the new positions.
                Some((_, explored_from)) if from < *explored_from => {
                    until = std::mem::replace(explored_from, from);
                }
                Some(_) => return,
            }
        }
        // The `#` child of this node (`#.#`) is followed at the first position only:
        // from there it tries every later position itself.
        self.visit(hash, from, true, true);
        for at in from + 1..until {
            self.visit(hash, at, true, false);
        }
    }
}

impl Routing for TopicRouter {
    fn validate_binding(&self, _key: &str, _args: &Table) -> Result<()> {
        // As in RabbitMQ, any binding key is valid: `*` and `#` are wildcards only as
        // whole words, and words like "a*" or "##" match literally.
        Ok(())
    }

    fn add_binding(&mut self, dest: Destination, key: &str, _args: &Table) {
        let vocabulary = &mut self.vocabulary;
        let node = words(key).fold(&mut self.root, |node, word| node.child_or_insert(vocabulary, word));
        node.dests.push(dest);
    }

    fn remove_binding(&mut self, dest: Destination, key: &str, _args: &Table) {
        self.root.remove(&mut self.vocabulary, words(key), dest);
    }

    fn route(&self, routing_key: &str, _headers: &Table, out: &mut Vec<Destination>) {
        let mut inline = [UNKNOWN_WORD; INLINE_WORDS];
        let mut spilled = Vec::new();
        let mut len = 0;
        for word in words(routing_key) {
            let id = self.vocabulary.id(word);
            if len < INLINE_WORDS {
                inline[len] = id;
            } else {
                if spilled.is_empty() {
                    spilled.extend_from_slice(&inline);
                }
                spilled.push(id);
            }
            len += 1;
        }
        let words = if len <= INLINE_WORDS { &inline[..len] } else { &spilled[..] };
        let mut walk = Walk { words, nested_hashes: Vec::new(), out };
        walk.visit(&self.root, 0, false, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::QueueId;

    fn q(n: u32) -> Destination {
        Destination::Queue(QueueId(n))
    }

    fn router(bindings: &[(&str, u32)]) -> TopicRouter {
        let mut r = TopicRouter::default();
        for &(key, n) in bindings {
            r.add_binding(q(n), key, &Table::new());
        }
        r
    }

    /// The queue numbers a key routes to, sorted and without duplicates (the broker
    /// removes duplicates).
    fn routed(r: &TopicRouter, key: &str) -> Vec<u32> {
        let mut out = Vec::new();
        r.route(key, &Table::new(), &mut out);
        let mut ns: Vec<u32> = out
            .into_iter()
            .map(|d| match d {
                Destination::Queue(QueueId(n)) => n,
                Destination::Exchange(_) => unreachable!("tests bind queues only"),
            })
            .collect();
        ns.sort_unstable();
        ns.dedup();
        ns
    }

    /// A reference matcher written as directly from the rules as possible (backtracking
    /// over word lists), to check the trie against.
    fn naive_matches(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|skip| naive_matches(rest, &key[skip..])),
            Some((&"*", rest)) => !key.is_empty() && naive_matches(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && naive_matches(rest, &key[1..]),
        }
    }

    fn split(key: &str) -> Vec<&str> {
        words(key).collect()
    }

    #[test]
    fn exact_keys_match_only_themselves() {
        let r = router(&[("a.b.c", 1), ("a.b", 2)]);
        assert_eq!(routed(&r, "a.b.c"), [1]);
        assert_eq!(routed(&r, "a.b"), [2]);
        assert!(routed(&r, "a").is_empty());
        assert!(routed(&r, "a.b.c.d").is_empty());
        assert!(routed(&r, "a.b.x").is_empty());
    }

    #[test]
    fn star_matches_exactly_one_word() {
        let r = router(&[("a.*.c", 1), ("*", 2)]);
        assert_eq!(routed(&r, "a.b.c"), [1]);
        assert_eq!(routed(&r, "a.xyz.c"), [1]);
        assert!(routed(&r, "a.c").is_empty(), "* must not match zero words");
        assert!(routed(&r, "a.b.b.c").is_empty(), "* must not match two words");
        assert_eq!(routed(&r, "oneword"), [2]);
        assert!(routed(&r, "two.words").is_empty());
    }

    /// rabbit_db_topic_exchange:split_topic_key/1 turns <<>> into [] (no words), so the
    /// empty key has no word for `*` to match.
    #[test]
    fn star_does_not_match_the_empty_key_which_has_no_words() {
        let r = router(&[("*", 1), ("", 2)]);
        assert_eq!(routed(&r, ""), [2]);
    }

    #[test]
    fn hash_alone_matches_every_key_including_the_empty_one() {
        let r = router(&[("#", 1)]);
        for key in ["", "a", "a.b", "a.b.c.d.e.f", ".", "a..b"] {
            assert_eq!(routed(&r, key), [1], "key {key:?}");
        }
    }

    #[test]
    fn hash_at_start_matches_zero_or_more_leading_words() {
        let r = router(&[("#.c", 1)]);
        assert_eq!(routed(&r, "c"), [1]);
        assert_eq!(routed(&r, "b.c"), [1]);
        assert_eq!(routed(&r, "a.b.c"), [1]);
        assert!(routed(&r, "a.b.c.d").is_empty());
        assert!(routed(&r, "").is_empty());
    }

    #[test]
    fn hash_at_end_matches_zero_or_more_trailing_words() {
        let r = router(&[("a.#", 1)]);
        assert_eq!(routed(&r, "a"), [1]);
        assert_eq!(routed(&r, "a.b"), [1]);
        assert_eq!(routed(&r, "a.b.c.d"), [1]);
        assert!(routed(&r, "b.a").is_empty());
        assert!(routed(&r, "").is_empty());
    }

    #[test]
    fn hash_in_the_middle_matches_zero_or_more_middle_words() {
        let r = router(&[("a.#.b", 1)]);
        assert_eq!(routed(&r, "a.b"), [1]);
        assert_eq!(routed(&r, "a.x.b"), [1]);
        assert_eq!(routed(&r, "a.x.y.z.b"), [1]);
        assert_eq!(routed(&r, "a.b.b"), [1], "# may consume a word equal to the next one");
        assert!(routed(&r, "a.b.c").is_empty());
        assert!(routed(&r, "a").is_empty());
    }

    #[test]
    fn several_hashes_and_hash_star_combinations() {
        let r = router(&[("#.#", 1), ("#.*.#", 2), ("*.#.#", 3), ("#.b.#", 4)]);
        assert_eq!(routed(&r, ""), [1]);
        assert_eq!(routed(&r, "a"), [1, 2, 3]);
        assert_eq!(routed(&r, "b"), [1, 2, 3, 4]);
        assert_eq!(routed(&r, "a.b.c"), [1, 2, 3, 4]);
    }

    /// Every '.' separates two words (rabbit_db_topic_exchange:split_topic_key/1), so
    /// "a..b" is three words with an empty middle one and "a." ends with an empty word.
    #[test]
    fn empty_words_are_words() {
        let r = router(&[("a.*.b", 1), ("a..b", 2), ("a.#.b", 3), ("a.b", 4), ("a.*", 5), ("*.*", 6)]);
        assert_eq!(routed(&r, "a..b"), [1, 2, 3]);
        assert_eq!(routed(&r, "a.b"), [3, 4, 5, 6]);
        assert_eq!(routed(&r, "a."), [5, 6]);
        assert_eq!(routed(&r, "."), [6]);
    }

    #[test]
    fn empty_binding_key_matches_only_the_empty_routing_key() {
        let r = router(&[("", 1)]);
        assert_eq!(routed(&r, ""), [1]);
        assert!(routed(&r, ".").is_empty());
        assert!(routed(&r, "a").is_empty());
    }

    #[test]
    fn wildcards_inside_words_are_literal() {
        let r = router(&[("a*.b", 1), ("##", 2)]);
        assert_eq!(routed(&r, "a*.b"), [1]);
        assert!(routed(&r, "ax.b").is_empty());
        assert_eq!(routed(&r, "##"), [2]);
        assert!(routed(&r, "x").is_empty());
    }

    /// In RabbitMQ a routing-key word "*" or "#" also follows the trie edge of that
    /// name, which the wildcard matches anyway: such words match like any other.
    #[test]
    fn wildcard_words_in_routing_keys_match_like_any_word() {
        let r = router(&[("a.*", 1), ("a.b", 2), ("a.#.c", 3)]);
        assert_eq!(routed(&r, "a.*"), [1]);
        assert_eq!(routed(&r, "a.#"), [1]);
        assert_eq!(routed(&r, "a.#.c"), [3]);
    }

    #[test]
    fn several_bindings_to_one_destination() {
        let r = router(&[("a.*", 1), ("*.b", 1), ("a.b", 1), ("c.d", 1)]);
        let mut out = Vec::new();
        r.route("a.b", &Table::new(), &mut out);
        assert_eq!(out.len(), 3, "one entry per matching binding; the broker dedups");
        assert_eq!(routed(&r, "c.d"), [1]);
    }

    /// RabbitMQ's own topic test (test_topic_matching in unit_inbroker_parallel_SUITE.erl)
    /// binds "args-test" to t27 twice with different arguments, and removing one leaves
    /// the other.
    #[test]
    fn removing_one_of_two_same_key_bindings_leaves_the_other() {
        let mut r = TopicRouter::default();
        let mut args = Table::new();
        r.add_binding(q(1), "a.#", &args);
        args.insert("foo".into(), "bar".into());
        r.add_binding(q(1), "a.#", &args);
        r.remove_binding(q(1), "a.#", &args);
        assert_eq!(routed(&r, "a.b"), [1]);
        r.remove_binding(q(1), "a.#", &Table::new());
        assert!(routed(&r, "a.b").is_empty());
    }

    #[test]
    fn removal_affects_only_that_destination_and_key() {
        let mut r = router(&[("a.*", 1), ("a.*", 2), ("a.b", 1)]);
        r.remove_binding(q(1), "a.*", &Table::new());
        assert_eq!(routed(&r, "a.c"), [2]);
        assert_eq!(routed(&r, "a.b"), [1, 2]);
        // Removing a binding that does not exist changes nothing.
        r.remove_binding(q(3), "a.*", &Table::new());
        r.remove_binding(q(1), "x.y.z", &Table::new());
        assert_eq!(routed(&r, "a.b"), [1, 2]);
    }

    #[test]
    fn removal_prunes_empty_nodes() {
        let mut r = TopicRouter::default();
        assert_eq!(r.root.node_count(), 1);
        let keys = ["a.b.c", "a.*.#", "#.x.#", "#", "*", "", "a..b", "a.b"];
        for (n, key) in keys.iter().enumerate() {
            r.add_binding(q(n as u32), key, &Table::new());
        }
        assert!(r.root.node_count() > 10);
        for (n, key) in keys.iter().enumerate() {
            r.remove_binding(q(n as u32), key, &Table::new());
        }
        assert_eq!(r.root.node_count(), 1, "{:?}", r.root);
        assert!(r.root.is_empty());
    }

    #[test]
    fn pruning_keeps_nodes_still_on_other_bindings_paths() {
        let mut r = router(&[("a.b.c", 1), ("a.b", 2)]);
        r.remove_binding(q(1), "a.b.c", &Table::new());
        assert_eq!(r.root.node_count(), 3);
        assert_eq!(routed(&r, "a.b"), [2]);
        r.remove_binding(q(2), "a.b", &Table::new());
        assert_eq!(r.root.node_count(), 1);
    }

    #[test]
    fn churn_does_not_grow_the_trie() {
        let mut r = router(&[("keep.#", 0)]);
        let before = r.root.node_count();
        for i in 0..1000 {
            let key = format!("k{i}.*.#.w{}", i % 7);
            r.add_binding(q(i), &key, &Table::new());
            r.remove_binding(q(i), &key, &Table::new());
        }
        assert_eq!(r.root.node_count(), before);
        assert_eq!(r.vocabulary.ids.len(), 1, "only 'keep' is left");
    }

    #[test]
    fn removal_forgets_words_and_reuses_their_ids_without_aliasing() {
        let mut r = router(&[("a.b", 1), ("a.c", 2)]);
        r.remove_binding(q(1), "a.b", &Table::new());
        assert_eq!(r.vocabulary.ids.len(), 2, "'b' is gone, 'a' and 'c' stay");
        // "d" takes the id "b" had: "a.b" must not route to it.
        r.add_binding(q(3), "a.d", &Table::new());
        assert!(routed(&r, "a.b").is_empty());
        assert_eq!(routed(&r, "a.d"), [3]);
        assert_eq!(routed(&r, "a.c"), [2]);
        r.remove_binding(q(2), "a.c", &Table::new());
        r.remove_binding(q(3), "a.d", &Table::new());
        assert!(r.vocabulary.ids.is_empty());
    }

    #[test]
    fn routing_keys_longer_than_the_inline_buffer() {
        let long: Vec<String> = (0..INLINE_WORDS + 5).map(|i| format!("w{i}")).collect();
        let key = long.join(".");
        let mut starred = long.clone();
        starred[INLINE_WORDS + 2] = "*".into();
        let r = router(&[(&key, 1), (&starred.join("."), 2), (&format!("#.w{}", INLINE_WORDS + 4), 3)]);
        assert_eq!(routed(&r, &key), [1, 2, 3]);
        assert!(routed(&r, &format!("{key}.x")).is_empty());
    }

    /// RabbitMQ's topic exchange test (test_topic_matching in
    /// deps/rabbit/test/unit_inbroker_parallel_SUITE.erl): the same bindings and keys,
    /// and the same expected queues, before and after removing some bindings.
    #[test]
    fn rabbitmq_topic_matching_suite() {
        let bindings = [
            ("a.b.c", 1),
            ("a.*.c", 2),
            ("a.#.b", 3),
            ("a.b.b.c", 4),
            ("#", 5),
            ("#.#", 6),
            ("#.b", 7),
            ("*.*", 8),
            ("a.*", 9),
            ("*.b.c", 10),
            ("a.#", 11),
            ("a.#.#", 12),
            ("b.b.c", 13),
            ("a.b.b", 14),
            ("a.b", 15),
            ("b.c", 16),
            ("", 17),
            ("*.*.*", 18),
            ("vodka.martini", 19),
            ("a.b.c", 20),
            ("*.#", 21),
            ("#.*.#", 22),
            ("*.#.#", 23),
            ("#.#.#", 24),
            ("*", 25),
            ("#.b.#", 26),
            ("args-test", 27),
        ];
        let mut r = router(&bindings);
        let mut args = Table::new();
        args.insert("foo".into(), "baz".into());
        r.add_binding(q(27), "args-test", &args);

        let expect = |r: &TopicRouter, cases: &[(&str, &[u32])]| {
            for (key, want) in cases {
                assert_eq!(routed(r, key), *want, "routing key {key:?}");
            }
        };
        expect(
            &r,
            &[
                ("a.b.c", &[1, 2, 5, 6, 10, 11, 12, 18, 20, 21, 22, 23, 24, 26]),
                ("a.b", &[3, 5, 6, 7, 8, 9, 11, 12, 15, 21, 22, 23, 24, 26]),
                ("a.b.b", &[3, 5, 6, 7, 11, 12, 14, 18, 21, 22, 23, 24, 26]),
                ("", &[5, 6, 17, 24]),
                ("b.c.c", &[5, 6, 18, 21, 22, 23, 24, 26]),
                ("a.a.a.a.a", &[5, 6, 11, 12, 21, 22, 23, 24]),
                ("vodka.gin", &[5, 6, 8, 21, 22, 23, 24]),
                ("vodka.martini", &[5, 6, 8, 19, 21, 22, 23, 24]),
                ("b.b.c", &[5, 6, 10, 13, 18, 21, 22, 23, 24, 26]),
                ("nothing.here.at.all", &[5, 6, 21, 22, 23, 24]),
                ("oneword", &[5, 6, 21, 22, 23, 24, 25]),
                ("args-test", &[5, 6, 21, 22, 23, 24, 25, 27]),
            ],
        );

        // The suite removes t1 ("a.b.c"), t5, t11, t19, t21 and t27's second binding.
        let removed = [("a.b.c", 1), ("#", 5), ("a.#", 11), ("vodka.martini", 19), ("*.#", 21)];
        for (key, n) in removed {
            r.remove_binding(q(n), key, &Table::new());
        }
        r.remove_binding(q(27), "args-test", &args);
        expect(
            &r,
            &[
                ("a.b.c", &[2, 6, 10, 12, 18, 20, 22, 23, 24, 26]),
                ("a.b", &[3, 6, 7, 8, 9, 12, 15, 22, 23, 24, 26]),
                ("a.b.b", &[3, 6, 7, 12, 14, 18, 22, 23, 24, 26]),
                ("", &[6, 17, 24]),
                ("b.c.c", &[6, 18, 22, 23, 24, 26]),
                ("a.a.a.a.a", &[6, 12, 22, 23, 24]),
                ("vodka.gin", &[6, 8, 22, 23, 24]),
                ("vodka.martini", &[6, 8, 22, 23, 24]),
                ("b.b.c", &[6, 10, 13, 18, 22, 23, 24, 26]),
                ("nothing.here.at.all", &[6, 22, 23, 24]),
                ("oneword", &[6, 22, 23, 24, 25]),
                ("args-test", &[6, 22, 23, 24, 25, 27]),
            ],
        );

        for (key, n) in bindings.into_iter().filter(|b| !removed.contains(b)) {
            r.remove_binding(q(n), key, &Table::new());
        }
        expect(&r, &[("a.b.c", &[]), ("b.b.c", &[]), ("", &[])]);
        assert!(r.root.is_empty());
    }

    /// Many `#` words against a long key: without remembering the positions nested `#`
    /// nodes were entered at, this takes C(60, 6) ≈ 50 million steps per route.
    #[test]
    fn many_hashes_do_not_blow_up() {
        let r = router(&[("#.a.#.a.#.a.#.a.#.a.#.a.#.b", 1), ("#.a.#.a.#.a.#.a.#.a.#.a.#", 2)]);
        let key = vec!["a"; 60].join(".");
        // On a thread, so that a blow-up fails the test instead of hanging it.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            done.send((routed(&r, &key), routed(&r, &format!("{key}.b")))).unwrap();
        });
        let result = finished.recv_timeout(std::time::Duration::from_secs(5)).expect("routing took over 5 s");
        assert_eq!(result, (vec![2], vec![1, 2]));
    }

    /// The trie against the reference matcher, on every pattern and key of a small
    /// alphabet that includes empty words.
    #[test]
    fn trie_agrees_with_reference_matcher() {
        let parts = ["a", "b", "", "*", "#"];
        let mut patterns: Vec<String> = vec![String::new()];
        for len in 1..=4 {
            let mut idx = vec![0; len];
            loop {
                patterns.push(idx.iter().map(|&i| parts[i]).collect::<Vec<_>>().join("."));
                let Some(pos) = idx.iter().rposition(|&i| i + 1 < parts.len()) else { break };
                idx[pos] += 1;
                idx[pos + 1..].iter_mut().for_each(|i| *i = 0);
            }
        }
        let keys: Vec<&String> = patterns.iter().filter(|p| !p.contains(['*', '#'])).collect();
        let mut r = TopicRouter::default();
        for (n, p) in patterns.iter().enumerate() {
            r.add_binding(q(n as u32), p, &Table::new());
        }
        let mut long_keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        long_keys.extend(["a.b.a.b.a.b".to_string(), "a...b.".to_string(), "b.b.b.b.b.b.b".to_string()]);
        for key in &long_keys {
            let want: Vec<u32> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| naive_matches(&split(p), &split(key)))
                .map(|(n, _)| n as u32)
                .collect();
            assert_eq!(routed(&r, key), want, "routing key {key:?}");
        }
    }

    /// A tiny deterministic generator (xorshift64*), so the benchmark needs no crates.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Routes per second with 10,000 bindings: run with
    /// `cargo test --release --lib bench_topic -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_topic_10k_bindings() {
        const VOCABULARY: usize = 50;
        const BINDINGS: usize = 10_000;
        const ROUTES: usize = 1_000_000;
        let vocab: Vec<String> = (0..VOCABULARY).map(|i| format!("word{i}")).collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

        // 60% exact keys, 25% with one or two `*`, 15% with a `#` at the start, middle
        // or end, 3 to 5 words deep.
        let mut r = TopicRouter::default();
        for n in 0..BINDINGS {
            let len = 3 + rng.below(3);
            let mut key: Vec<&str> = (0..len).map(|_| vocab[rng.below(VOCABULARY)].as_str()).collect();
            match rng.below(100) {
                0..=59 => {}
                60..=84 => {
                    for _ in 0..1 + rng.below(2) {
                        key[rng.below(len)] = "*";
                    }
                }
                _ => key[[0, len / 2, len - 1][rng.below(3)]] = "#",
            }
            r.add_binding(q((n % 1000) as u32), &key.join("."), &Table::new());
        }
        let keys: Vec<String> = (0..ROUTES)
            .map(|_| {
                let len = 3 + rng.below(3);
                (0..len).map(|_| vocab[rng.below(VOCABULARY)].as_str()).collect::<Vec<_>>().join(".")
            })
            .collect();

        let headers = Table::new();
        let mut out = Vec::new();
        let mut matched = 0;
        let start = std::time::Instant::now();
        for key in &keys {
            out.clear();
            r.route(key, &headers, &mut out);
            matched += out.len();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "topic routing, {BINDINGS} bindings, {} nodes: {:.0} routes/s ({:.2} destinations per route)",
            r.root.node_count(),
            ROUTES as f64 / secs,
            matched as f64 / ROUTES as f64
        );
    }
}

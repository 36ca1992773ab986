//! The subscription tree: topic filters split at `/` into a trie, so a PUBLISH finds its
//! subscribers by walking the topic's levels instead of testing every filter.
//!
//! Generic over the subscriber handle `T` so it is unit-tested without sessions.
//!
//! Every walk is a loop, never a recursion: a topic may have tens of thousands of
//! levels (a 65,535-byte name of single characters), and a recursive walk, drop
//! included, would overflow a worker thread's stack on one client's say-so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::codec::SubscribeOptions;

#[derive(Debug, Clone)]
pub struct Subscriber<T> {
    pub client_id: Arc<str>,
    pub target: T,
    pub options: SubscribeOptions,
    pub id: Option<u32>,
}

#[derive(Debug)]
struct SharedGroup<T> {
    name: Arc<str>,
    members: Vec<Subscriber<T>>,
    next: AtomicUsize,
}

struct Node<T> {
    children: HashMap<Box<str>, Node<T>>,
    subscribers: Vec<Subscriber<T>>,
    shared: Vec<SharedGroup<T>>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            subscribers: Vec::new(),
            shared: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty() && self.shared.is_empty()
    }

    /// Empty once `client` (of `group`) is gone from it, and without children.
    fn empty_without(&self, group: Option<&str>, client: &str) -> bool {
        if !self.children.is_empty() {
            return false;
        }
        let others = |list: &[Subscriber<T>]| list.iter().any(|s| &*s.client_id != client);
        match group {
            None => self.shared.is_empty() && !others(&self.subscribers),
            Some(g) => {
                self.subscribers.is_empty()
                    && self
                        .shared
                        .iter()
                        .all(|s| &*s.name == g && !others(&s.members))
            }
        }
    }
}

impl<T> Drop for Node<T> {
    /// Takes the subtree apart level by level: the derived drop would recurse once per
    /// level.
    fn drop(&mut self) {
        let mut stack: Vec<Node<T>> = self.children.drain().map(|(_, n)| n).collect();
        while let Some(mut node) = stack.pop() {
            stack.extend(node.children.drain().map(|(_, n)| n));
        }
    }
}

/// One matching subscription: ordinary ones are all returned; of a shared group only one
/// member, chosen round-robin (MQTT 5 §4.8.2).
pub struct Match<'a, T> {
    pub subscriber: &'a Subscriber<T>,
    pub shared: bool,
}

pub struct SubscriptionTree<T> {
    root: Node<T>,
    count: usize,
}

impl<T> std::fmt::Debug for SubscriptionTree<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionTree")
            .field("subscriptions", &self.count)
            .finish_non_exhaustive()
    }
}

impl<T> Default for SubscriptionTree<T> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            count: 0,
        }
    }
}

impl<T: Clone> SubscriptionTree<T> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds or replaces (same client, same filter, same group) a subscription.
    /// Returns true if it already existed (for retain handling 1, MQTT 5 §3.3.1.3).
    pub fn insert(&mut self, filter: &str, group: Option<&str>, sub: Subscriber<T>) -> bool {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        let list = match group {
            None => &mut node.subscribers,
            Some(g) => {
                let pos = match node.shared.iter().position(|s| &*s.name == g) {
                    Some(p) => p,
                    None => {
                        node.shared.push(SharedGroup {
                            name: Arc::from(g),
                            members: Vec::new(),
                            next: AtomicUsize::new(0),
                        });
                        node.shared.len() - 1
                    }
                };
                &mut node.shared[pos].members
            }
        };
        if let Some(existing) = list.iter_mut().find(|s| s.client_id == sub.client_id) {
            *existing = sub;
            true
        } else {
            list.push(sub);
            self.count += 1;
            false
        }
    }

    /// Removes a client's subscription; true if it existed. Branches left empty are
    /// pruned: the highest node whose subtree held nothing but this subscription is cut
    /// from its parent (found first by a read-only walk, as a mutable walk cannot keep
    /// its ancestors).
    pub fn remove(&mut self, filter: &str, group: Option<&str>, client_id: &str) -> bool {
        // The deepest node to keep, and the child of it to cut, if the target empties.
        let mut cut: Option<(usize, &str)> = None;
        let mut node = &self.root;
        for (depth, level) in filter.split('/').enumerate() {
            let Some(child) = node.children.get(level) else {
                return false;
            };
            // `node` must stay if anything but this one path hangs from it.
            let keeps = depth == 0
                || node.children.len() > 1
                || !node.subscribers.is_empty()
                || !node.shared.is_empty();
            if keeps {
                cut = Some((depth, level));
            }
            node = child;
        }
        if !Self::holds(node, group, client_id) {
            return false;
        }
        if node.empty_without(group, client_id) {
            let (cut_depth, cut_level) = cut.expect("the root always stays");
            let mut keeper = &mut self.root;
            for level in filter.split('/').take(cut_depth) {
                keeper = keeper.children.get_mut(level).expect("walked above");
            }
            // Nothing but the path to this subscription hangs below the child.
            keeper.children.remove(cut_level);
            self.count -= 1;
            return true;
        }
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.get_mut(level).expect("walked above");
        }
        let removed = Self::remove_here(node, group, client_id);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Whether `node` holds the subscription of `client` (in `group`).
    fn holds(node: &Node<T>, group: Option<&str>, client: &str) -> bool {
        let has = |list: &[Subscriber<T>]| list.iter().any(|s| &*s.client_id == client);
        match group {
            None => has(&node.subscribers),
            Some(g) => node.shared.iter().any(|s| &*s.name == g && has(&s.members)),
        }
    }

    fn remove_here(node: &mut Node<T>, group: Option<&str>, client: &str) -> bool {
        match group {
            None => {
                let before = node.subscribers.len();
                node.subscribers.retain(|s| &*s.client_id != client);
                before != node.subscribers.len()
            }
            Some(g) => {
                let Some(pos) = node.shared.iter().position(|s| &*s.name == g) else {
                    return false;
                };
                let members = &mut node.shared[pos].members;
                let before = members.len();
                members.retain(|s| &*s.client_id != client);
                let removed = before != members.len();
                if members.is_empty() {
                    node.shared.remove(pos);
                }
                removed
            }
        }
    }

    /// Calls `f` for every subscription matching `topic` (MQTT 5 §4.7): `+` one level,
    /// `#` this level and all below (including the parent, "sport/#" matches "sport"),
    /// and no wildcard at the first level matches a topic beginning with `$` (§4.7.2).
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(Match<'a, T>)) {
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        // Nodes still to visit, with the number of topic levels they matched. Each
        // level of the topic adds at most two (its own name and `+`).
        let mut pending: Vec<(&'a Node<T>, usize)> = vec![(&self.root, 0)];
        while let Some((node, depth)) = pending.pop() {
            if depth == levels.len() {
                Self::emit(node, &mut f);
                if let Some(hash) = node.children.get("#") {
                    Self::emit(hash, &mut f);
                }
                continue;
            }
            let wildcards_ok = !(depth == 0 && dollar);
            if let Some(child) = node.children.get(levels[depth]) {
                pending.push((child, depth + 1));
            }
            if wildcards_ok {
                if let Some(plus) = node.children.get("+") {
                    pending.push((plus, depth + 1));
                }
                if let Some(hash) = node.children.get("#") {
                    Self::emit(hash, &mut f);
                }
            }
        }
    }

    fn emit<'a>(node: &'a Node<T>, f: &mut impl FnMut(Match<'a, T>)) {
        for s in &node.subscribers {
            f(Match {
                subscriber: s,
                shared: false,
            });
        }
        for g in &node.shared {
            if g.members.is_empty() {
                continue;
            }
            let i = g.next.fetch_add(1, Ordering::Relaxed) % g.members.len();
            f(Match {
                subscriber: &g.members[i],
                shared: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(client: &str) -> Subscriber<()> {
        Subscriber {
            client_id: Arc::from(client),
            target: (),
            options: SubscribeOptions::default(),
            id: None,
        }
    }

    fn matching(tree: &SubscriptionTree<()>, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        tree.for_each_match(topic, |m| out.push(m.subscriber.client_id.to_string()));
        out.sort();
        out
    }

    #[test]
    fn wildcards_match_per_spec() {
        let mut t = SubscriptionTree::default();
        t.insert("sport/tennis/+", None, sub("plus"));
        t.insert("sport/#", None, sub("hash"));
        t.insert("#", None, sub("all"));
        t.insert("sport/tennis/player1", None, sub("exact"));
        t.insert("+/+", None, sub("two"));
        assert_eq!(
            matching(&t, "sport/tennis/player1"),
            vec!["all", "exact", "hash", "plus"]
        );
        assert_eq!(matching(&t, "sport"), vec!["all", "hash"]);
        assert_eq!(matching(&t, "sport/x"), vec!["all", "hash", "two"]);
        assert_eq!(matching(&t, "/x"), vec!["all", "two"]);
    }

    #[test]
    fn dollar_topics_not_matched_by_first_level_wildcards() {
        let mut t = SubscriptionTree::default();
        t.insert("#", None, sub("all"));
        t.insert("+/broker/uptime", None, sub("plus"));
        t.insert("$SYS/#", None, sub("sys"));
        assert_eq!(matching(&t, "$SYS/broker/uptime"), vec!["sys"]);
    }

    #[test]
    fn replace_and_remove() {
        let mut t = SubscriptionTree::default();
        assert!(!t.insert("a/b", None, sub("c")));
        assert!(
            t.insert("a/b", None, sub("c")),
            "same client and filter replaces"
        );
        assert_eq!(t.len(), 1);
        assert!(t.remove("a/b", None, "c"));
        assert!(!t.remove("a/b", None, "c"));
        assert!(t.is_empty());
        assert!(t.root.is_empty(), "empty branches are pruned");
    }

    #[test]
    fn shared_group_delivers_to_one_member_round_robin() {
        let mut t = SubscriptionTree::default();
        t.insert("j/+", Some("g"), sub("a"));
        t.insert("j/+", Some("g"), sub("b"));
        t.insert("j/+", None, sub("plain"));
        let mut seen = Vec::new();
        for _ in 0..4 {
            let m = matching(&t, "j/1");
            assert_eq!(m.len(), 2);
            assert!(m.contains(&"plain".to_string()));
            seen.extend(m.into_iter().filter(|c| c != "plain"));
        }
        seen.sort();
        assert_eq!(seen, vec!["a", "a", "b", "b"]);
        assert!(t.remove("j/+", Some("g"), "a"));
        assert_eq!(matching(&t, "j/1"), vec!["b", "plain"]);
    }

    /// Runs `f` on a thread with a 256 KiB stack: a walk that recursed once per level
    /// would overflow it within a few thousand levels.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(f)
            .expect("thread")
            .join()
            .expect("no stack overflow");
    }

    #[test]
    fn deep_filters_are_built_matched_removed_and_dropped_without_recursion() {
        on_small_stack(|| {
            let levels = 100_000;
            let topic = vec!["a"; levels].join("/");
            let mut t = SubscriptionTree::default();
            t.insert(&topic, None, sub("exact"));
            let mut plus = vec!["a"; levels];
            plus[levels / 2] = "+";
            t.insert(&plus.join("/"), None, sub("plus"));
            t.insert(
                &format!("{}/#", vec!["a"; levels - 1].join("/")),
                None,
                sub("hash"),
            );
            t.insert(&topic, Some("g"), sub("shared"));
            assert_eq!(
                matching(&t, &topic),
                vec!["exact", "hash", "plus", "shared"]
            );
            assert!(matching(&t, &format!("{topic}/b")).contains(&"hash".to_string()));
            assert!(t.remove(&topic, None, "exact"));
            assert!(t.remove(&topic, Some("g"), "shared"));
            assert!(!t.remove(&topic, None, "exact"));
            assert_eq!(matching(&t, &topic), vec!["hash", "plus"]);
            assert!(t.remove(&plus.join("/"), None, "plus"));
            assert_eq!(t.len(), 1);
            // Dropped with a 100,000-level branch still in it.
            drop(t);
            // And a branch cut off whole by a removal is dropped the same way.
            let mut t = SubscriptionTree::default();
            t.insert(&topic, None, sub("c"));
            assert!(t.remove(&topic, None, "c"));
            assert!(t.root.is_empty());
        });
    }

    #[test]
    fn removal_prunes_only_what_became_empty() {
        let mut t = SubscriptionTree::default();
        t.insert("a/b/c/d", None, sub("x"));
        t.insert("a/b", None, sub("y"));
        t.insert("a/b/e", Some("g"), sub("z"));
        assert!(!t.remove("a/b/c/d", None, "y"), "not y's");
        assert!(!t.remove("a/b/c", None, "x"), "not a subscription");
        assert!(!t.remove("a/b/e", Some("h"), "z"), "another group");
        assert!(t.remove("a/b/c/d", None, "x"));
        let b = &t.root.children["a"].children["b"];
        assert!(!b.children.contains_key("c"), "c/d pruned");
        assert!(b.children.contains_key("e"));
        assert_eq!(matching(&t, "a/b"), vec!["y"]);
        assert!(t.remove("a/b/e", Some("g"), "z"));
        assert!(t.root.children["a"].children["b"].children.is_empty());
        assert!(t.remove("a/b", None, "y"));
        assert!(t.root.is_empty());
        assert!(t.is_empty());
    }
}

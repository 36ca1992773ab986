//! The subscription tree: topic filters split at `/` into a trie, so a PUBLISH finds its
//! subscribers by walking the topic's levels instead of testing every filter.
//!
//! Generic over the subscriber handle `T` so it is unit-tested without sessions.

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

#[derive(Debug)]
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
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty() && self.shared.is_empty()
    }
}

/// One matching subscription: ordinary ones are all returned; of a shared group only one
/// member, chosen round-robin (MQTT 5 §4.8.2).
pub struct Match<'a, T> {
    pub subscriber: &'a Subscriber<T>,
    pub shared: bool,
}

#[derive(Debug)]
pub struct SubscriptionTree<T> {
    root: Node<T>,
    count: usize,
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

    /// Removes a client's subscription; true if it existed.
    pub fn remove(&mut self, filter: &str, group: Option<&str>, client_id: &str) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = Self::remove_in(&mut self.root, &levels, group, client_id);
        if removed {
            self.count -= 1;
        }
        removed
    }

    fn remove_in(node: &mut Node<T>, levels: &[&str], group: Option<&str>, client: &str) -> bool {
        match levels.split_first() {
            None => match group {
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
            },
            Some((first, rest)) => {
                let Some(child) = node.children.get_mut(*first) else {
                    return false;
                };
                let removed = Self::remove_in(child, rest, group, client);
                if child.is_empty() {
                    node.children.remove(*first);
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
        Self::walk(&self.root, &levels, 0, dollar, &mut f);
    }

    fn walk<'a>(
        node: &'a Node<T>,
        levels: &[&str],
        depth: usize,
        dollar: bool,
        f: &mut impl FnMut(Match<'a, T>),
    ) {
        let wildcards_ok = !(depth == 0 && dollar);
        if depth == levels.len() {
            Self::emit(node, f);
            if let Some(hash) = node.children.get("#") {
                Self::emit(hash, f);
            }
            return;
        }
        if let Some(child) = node.children.get(levels[depth]) {
            Self::walk(child, levels, depth + 1, dollar, f);
        }
        if wildcards_ok {
            if let Some(plus) = node.children.get("+") {
                Self::walk(plus, levels, depth + 1, dollar, f);
            }
            if let Some(hash) = node.children.get("#") {
                Self::emit(hash, f);
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
}

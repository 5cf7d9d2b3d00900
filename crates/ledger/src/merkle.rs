//! Merkle log following RFC 9162 section 2.1 (SHA-256), with inclusion and consistency proofs.
//!
//! - [`leaf_hash`] is `SHA-256(0x00 || data)`, [`node_hash`] is `SHA-256(0x01 || left || right)`
//!   and the empty tree's root is `SHA-256("")` ([`EMPTY_ROOT`]).
//! - [`MerkleLog`] stores the leaf hashes of an append-only log plus, for every level, the roots
//!   of the complete (perfect, aligned) subtrees built so far. Appending is O(log n) worst case
//!   (O(1) amortised), [`MerkleLog::root`] is O(log n) and proofs are O(log² n).
//! - [`verify_inclusion`] and [`verify_consistency`] are the verification algorithms of RFC 9162
//!   sections 2.1.3.2 and 2.1.4.2. They never panic: any bad input is a [`MerkleError`].

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Root of the empty tree: `SHA-256("")`
/// (`e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Hash of a log entry: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Why a Merkle operation or a proof verification failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MerkleError {
    /// The leaf index is not smaller than the tree size.
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size it was checked against.
        size: u64,
    },
    /// A tree size larger than the log was requested.
    #[error("tree size {size} is larger than the log, which has {len} leaves")]
    SizeBeyondLog {
        /// The requested tree size.
        size: u64,
        /// The number of leaves in the log.
        len: u64,
    },
    /// A consistency proof was requested or checked from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeAfterNew {
        /// The old (first) tree size.
        old_size: u64,
        /// The new (second) tree size.
        new_size: u64,
    },
    /// An inclusion proof does not have the number of hashes its index and size call for.
    #[error("inclusion proof has {got} hashes, expected {expected}")]
    InclusionProofLength {
        /// Number of hashes in the proof.
        got: usize,
        /// Number of hashes an inclusion proof for this index and size has.
        expected: usize,
    },
    /// A consistency proof does not have the number of hashes its sizes call for.
    #[error("consistency proof has {got} hashes, expected {expected}")]
    ConsistencyProofLength {
        /// Number of hashes in the proof.
        got: usize,
        /// Number of hashes a consistency proof between these sizes has.
        expected: usize,
    },
    /// The inclusion proof is well formed but does not hash up to the given root.
    #[error("inclusion proof does not lead to the root")]
    InclusionRootMismatch,
    /// The consistency proof does not reproduce the old root.
    #[error("consistency proof does not lead to the old root")]
    ConsistencyOldRootMismatch,
    /// The consistency proof does not reproduce the new root.
    #[error("consistency proof does not lead to the new root")]
    ConsistencyNewRootMismatch,
    /// Two trees of the same size have different roots (the log forked or was rewritten).
    #[error("trees of the same size {size} have different roots")]
    SameSizeRootMismatch {
        /// The common tree size.
        size: u64,
    },
    /// A tree of size 0 was given a root other than [`EMPTY_ROOT`].
    #[error("the root given for the empty tree is not SHA-256 of the empty string")]
    EmptyRootMismatch,
}

/// Largest power of two strictly smaller than `n`; requires `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle log (RFC 9162 section 2.1).
///
/// `levels[0]` holds the leaf hashes; `levels[h][i]` is the root of the complete subtree of
/// `2^h` leaves starting at leaf `i * 2^h`. Every subtree the RFC's `MTH`, `PATH` and `PROOF`
/// recursions visit is either such a complete subtree or a right edge made of O(log n) of them,
/// so roots and proofs never rehash leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleLog {
    levels: Vec<Vec<Hash>>,
}

impl MerkleLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash (see [`leaf_hash`]) and returns its index. O(log n) worst case.
    pub fn push(&mut self, leaf_hash: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf_hash);
        let index = self.levels[0].len() as u64 - 1;
        let mut h = 0;
        while self.levels[h].len().is_multiple_of(2) {
            let level = &self.levels[h];
            let parent = node_hash(&level[level.len() - 2], &level[level.len() - 1]);
            if self.levels.len() == h + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[h + 1].push(parent);
            h += 1;
        }
        index
    }

    /// Number of leaves in the log.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the log has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`, if the log has it.
    pub fn leaf(&self, index: u64) -> Option<&Hash> {
        let index = usize::try_from(index).ok()?;
        self.levels.first()?.get(index)
    }

    /// Root of the whole log (`MTH(D[n])`); [`EMPTY_ROOT`] when empty. O(log n).
    pub fn root(&self) -> Hash {
        self.subtree(0, self.len())
    }

    /// Root of the tree made of the first `size` leaves. O(log n).
    pub fn root_at(&self, size: u64) -> Result<Hash, MerkleError> {
        self.check_size(size)?;
        Ok(self.subtree(0, size))
    }

    /// Audit path `PATH(index, D[size])` (RFC 9162 section 2.1.3.1) from the leaf at `index` to
    /// the root of the first `size` leaves, ordered from the leaf upwards.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        // Walk down from the root, collecting siblings; the RFC lists them bottom-up.
        let mut proof = Vec::new();
        let (mut m, mut start, mut n) = (index, 0u64, size);
        while n > 1 {
            let k = split_point(n);
            if m < k {
                proof.push(self.subtree(start + k, n - k));
                n = k;
            } else {
                proof.push(self.subtree(start, k));
                m -= k;
                start += k;
                n -= k;
            }
        }
        proof.reverse();
        Ok(proof)
    }

    /// Consistency proof `PROOF(old_size, D[new_size])` (RFC 9162 section 2.1.4.1) between the
    /// first `old_size` and the first `new_size` leaves. Empty when `old_size` is 0 or equal to
    /// `new_size`.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(MerkleError::OldSizeAfterNew { old_size, new_size });
        }
        if old_size == 0 {
            return Ok(Vec::new());
        }
        // SUBPROOF(m, D[n], b), unrolled; collected top-down then reversed.
        let mut proof = Vec::new();
        let (mut m, mut start, mut n, mut complete) = (old_size, 0u64, new_size, true);
        while m != n {
            let k = split_point(n);
            if m <= k {
                proof.push(self.subtree(start + k, n - k));
                n = k;
            } else {
                proof.push(self.subtree(start, k));
                m -= k;
                start += k;
                n -= k;
                complete = false;
            }
        }
        if !complete {
            proof.push(self.subtree(start, n));
        }
        proof.reverse();
        Ok(proof)
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        let len = self.len();
        if size > len {
            return Err(MerkleError::SizeBeyondLog { size, len });
        }
        Ok(())
    }

    /// `MTH(D[start:start+n])`; the range must lie within the log.
    ///
    /// Complete aligned subtrees are read from the cache; anything else follows the RFC
    /// recursion, which for the ranges used here only visits O(log n) cached subtrees.
    fn subtree(&self, start: u64, n: u64) -> Hash {
        if n == 0 {
            return EMPTY_ROOT;
        }
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let h = n.trailing_zeros() as usize;
            return self.levels[h][(start >> h) as usize];
        }
        let k = split_point(n);
        node_hash(&self.subtree(start, k), &self.subtree(start + k, n - k))
    }
}

impl Extend<Hash> for MerkleLog {
    fn extend<I: IntoIterator<Item = Hash>>(&mut self, iter: I) {
        for h in iter {
            self.push(h);
        }
    }
}

impl FromIterator<Hash> for MerkleLog {
    fn from_iter<I: IntoIterator<Item = Hash>>(iter: I) -> Self {
        let mut log = Self::new();
        log.extend(iter);
        log
    }
}

/// Number of hashes in `PATH(index, D[size])`; requires `index < size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // Levels below the point where the paths to `index` and to the last leaf part ways always
    // contribute a sibling; above it, only the levels where `index` goes right do.
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Number of hashes in `PROOF(old_size, D[new_size])`; requires `0 < old_size < new_size`.
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let last = old_size - 1;
    let inner = 64 - (last ^ (new_size - 1)).leading_zeros();
    let border = last.checked_shr(inner).unwrap_or(0).count_ones();
    let shift = old_size.trailing_zeros();
    // The old tree's root is omitted from the proof when the old tree is complete.
    let seed = u32::from(!old_size.is_power_of_two());
    (seed + inner.saturating_sub(shift) + border) as usize
}

/// Verifies that `leaf_hash` is the leaf at `index` of the tree of `size` leaves whose root is
/// `root`, given the audit path `proof` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(MerkleError::InclusionProofLength {
            got: proof.len(),
            expected,
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            // Unreachable after the length check; kept to follow the RFC verbatim.
            return Err(MerkleError::InclusionProofLength {
                got: proof.len(),
                expected,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::InclusionProofLength {
            got: proof.len(),
            expected,
        });
    }
    if r != *root {
        return Err(MerkleError::InclusionRootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root`, given the consistency proof `proof`
/// (RFC 9162 section 2.1.4.2).
///
/// Beyond the RFC (which defines proofs for `0 < old_size < new_size`): equal sizes need an
/// empty proof and equal roots, and an old size of 0 needs an empty proof and
/// `old_root == EMPTY_ROOT` (the empty tree is a prefix of every tree).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::OldSizeAfterNew { old_size, new_size });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(MerkleError::ConsistencyProofLength {
                got: proof.len(),
                expected: 0,
            });
        }
        if old_size == 0 {
            if *old_root != EMPTY_ROOT {
                return Err(MerkleError::EmptyRootMismatch);
            }
            if new_size == 0 && *new_root != EMPTY_ROOT {
                return Err(MerkleError::EmptyRootMismatch);
            }
        } else if old_root != new_root {
            return Err(MerkleError::SameSizeRootMismatch { size: old_size });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old_size, new_size);
    // Step 1 (an empty path fails) is covered: `expected` is at least 1 when old < new.
    if proof.len() != expected || proof.is_empty() {
        return Err(MerkleError::ConsistencyProofLength {
            got: proof.len(),
            expected,
        });
    }
    // Step 2: if the old size is a power of two, the old root seeds the path.
    let (seed, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        (proof[0], &proof[1..])
    };
    // Steps 3 and 4.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (seed, seed);
    // Step 6.
    for c in rest {
        if snode == 0 {
            // Unreachable after the length check; kept to follow the RFC verbatim.
            return Err(MerkleError::ConsistencyProofLength {
                got: proof.len(),
                expected,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(MerkleError::ConsistencyProofLength {
            got: proof.len(),
            expected,
        });
    }
    if fr != *old_root {
        return Err(MerkleError::ConsistencyOldRootMismatch);
    }
    if sr != *new_root {
        return Err(MerkleError::ConsistencyNewRootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---- Naive reference implementation, transcribed from RFC 9162 section 2.1 ----

    fn ref_mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => Sha256::digest(b"").into(),
            1 => d[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
            }
        }
    }

    fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return Vec::new();
        }
        let k = split_point(n as u64) as usize;
        if m < k {
            let mut p = ref_path(m, &d[..k]);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &d[k..]);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![ref_mth(d)] };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = ref_subproof(m, &d[..k], b);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &d[k..], false);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    fn ref_proof(m: usize, d: &[Hash]) -> Vec<Hash> {
        ref_subproof(m, d, true)
    }

    // ---- Helpers ----

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    fn log_of(n: u64) -> (MerkleLog, Vec<Hash>) {
        let l = leaves(n);
        (l.iter().copied().collect(), l)
    }

    // ---- Known answers ----

    #[test]
    fn empty_root_is_sha256_of_empty_string() {
        let empty = MerkleLog::new();
        assert_eq!(empty.len(), 0);
        assert!(empty.is_empty());
        assert_eq!(
            hex(&empty.root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(EMPTY_ROOT, <Hash>::from(Sha256::digest(b"")));
        assert_eq!(empty.root_at(0), Ok(EMPTY_ROOT));
    }

    #[test]
    fn one_leaf_root_is_its_leaf_hash() {
        let mut log = MerkleLog::new();
        assert_eq!(log.push(leaf_hash(b"")), 0);
        // SHA-256 of the single byte 0x00.
        assert_eq!(
            hex(&log.root()),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(log.inclusion_proof(0, 1), Ok(Vec::new()));
        assert_eq!(
            verify_inclusion(&leaf_hash(b""), 0, 1, &[], &log.root()),
            Ok(())
        );
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn unhex32(s: &str) -> Hash {
        unhex(s).try_into().unwrap()
    }

    /// The RFC 6962 test vectors used by Certificate Transparency implementations
    /// (e.g. transparency-dev/merkle `testonly`): leaves, roots for sizes 0..=8 and a few proofs.
    #[test]
    fn rfc6962_reference_vectors() {
        const LEAVES: [&str; 8] = [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ];
        const ROOTS: [&str; 9] = [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves: Vec<Hash> = LEAVES.iter().map(|l| leaf_hash(&unhex(l))).collect();
        let mut log = MerkleLog::new();
        assert_eq!(hex(&log.root()), ROOTS[0]);
        for (i, leaf) in leaves.iter().enumerate() {
            log.push(*leaf);
            assert_eq!(hex(&log.root()), ROOTS[i + 1], "root of size {}", i + 1);
        }
        for (size, root) in ROOTS.iter().enumerate() {
            assert_eq!(hex(&log.root_at(size as u64).unwrap()), *root);
        }
        let root8 = unhex32(ROOTS[8]);
        let inclusion: [(u64, [&str; 3]); 2] = [
            (
                0,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                [
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (index, want) in inclusion {
            let want: Vec<Hash> = want.iter().map(|h| unhex32(h)).collect();
            assert_eq!(
                log.inclusion_proof(index, 8).unwrap(),
                want,
                "PATH({index}, D[8])"
            );
            let leaf = leaves[index as usize];
            assert_eq!(verify_inclusion(&leaf, index, 8, &want, &root8), Ok(()));
        }
        let consistency: [(u64, &[&str]); 3] = [
            (
                1,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                2,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (old, want) in consistency {
            let want: Vec<Hash> = want.iter().map(|h| unhex32(h)).collect();
            assert_eq!(
                log.consistency_proof(old, 8).unwrap(),
                want,
                "PROOF({old}, D[8])"
            );
            let old_root = unhex32(ROOTS[old as usize]);
            assert_eq!(verify_consistency(old, 8, &old_root, &root8, &want), Ok(()));
        }
    }

    #[test]
    fn hashes_use_domain_separation_prefixes() {
        let mut h = Sha256::new();
        h.update([0x00u8, 1, 2, 3]);
        assert_eq!(leaf_hash(&[1, 2, 3]), <Hash>::from(h.finalize()));
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut h = Sha256::new();
        h.update([0x01u8]);
        h.update(a);
        h.update(b);
        assert_eq!(node_hash(&a, &b), <Hash>::from(h.finalize()));
    }

    #[test]
    fn fast_log_matches_reference_for_sizes_up_to_64() {
        let (log, d) = log_of(64);
        let mut growing = MerkleLog::new();
        assert_eq!(growing.root(), ref_mth(&[]));
        for (i, leaf) in d.iter().enumerate() {
            assert_eq!(growing.push(*leaf), i as u64);
            assert_eq!(growing.len(), i as u64 + 1);
            assert_eq!(growing.root(), ref_mth(&d[..=i]), "root after push {i}");
            assert_eq!(growing.leaf(i as u64), Some(leaf));
        }
        assert_eq!(growing.leaf(64), None);
        for n in 0..=64usize {
            let size = n as u64;
            let root = ref_mth(&d[..n]);
            assert_eq!(log.root_at(size), Ok(root), "root_at({n})");
            for m in 0..n {
                let proof = log.inclusion_proof(m as u64, size).unwrap();
                assert_eq!(proof, ref_path(m, &d[..n]), "PATH({m}, D[{n}])");
                assert_eq!(proof.len(), inclusion_proof_len(m as u64, size));
                assert_eq!(
                    verify_inclusion(&d[m], m as u64, size, &proof, &root),
                    Ok(())
                );
            }
            for m in 0..=n {
                let proof = log.consistency_proof(m as u64, size).unwrap();
                if 0 < m && m < n {
                    assert_eq!(proof, ref_proof(m, &d[..n]), "PROOF({m}, D[{n}])");
                    assert_eq!(proof.len(), consistency_proof_len(m as u64, size));
                } else {
                    assert!(proof.is_empty());
                }
                let old_root = ref_mth(&d[..m]);
                assert_eq!(
                    verify_consistency(m as u64, size, &old_root, &root, &proof),
                    Ok(()),
                    "verify PROOF({m}, D[{n}])"
                );
            }
        }
    }

    #[test]
    fn out_of_range_requests_are_errors() {
        let (log, d) = log_of(5);
        let root = log.root();
        assert_eq!(
            log.root_at(6),
            Err(MerkleError::SizeBeyondLog { size: 6, len: 5 })
        );
        assert_eq!(
            log.inclusion_proof(7, 5),
            Err(MerkleError::IndexOutOfRange { index: 7, size: 5 })
        );
        assert_eq!(
            MerkleError::IndexOutOfRange { index: 7, size: 5 }.to_string(),
            "leaf index 7 is outside a tree of 5 leaves"
        );
        assert_eq!(
            log.inclusion_proof(0, 6),
            Err(MerkleError::SizeBeyondLog { size: 6, len: 5 })
        );
        assert_eq!(
            log.consistency_proof(4, 3),
            Err(MerkleError::OldSizeAfterNew {
                old_size: 4,
                new_size: 3
            })
        );
        assert_eq!(
            log.consistency_proof(1, 6),
            Err(MerkleError::SizeBeyondLog { size: 6, len: 5 })
        );
        assert_eq!(
            verify_inclusion(&d[0], 0, 0, &[], &EMPTY_ROOT),
            Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&d[0], 5, 5, &[], &root),
            Err(MerkleError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            verify_consistency(5, 4, &root, &root, &[]),
            Err(MerkleError::OldSizeAfterNew {
                old_size: 5,
                new_size: 4
            })
        );
    }

    #[test]
    fn error_messages() {
        let (log, d) = log_of(5);
        let root = log.root();
        let mut proof = log.inclusion_proof(1, 5).unwrap();
        proof[0][0] ^= 1;
        let e = verify_inclusion(&d[1], 1, 5, &proof, &root).unwrap_err();
        assert_eq!(e.to_string(), "inclusion proof does not lead to the root");
        let old = log.root_at(3).unwrap();
        let mut proof = log.consistency_proof(3, 5).unwrap();
        proof.push([0; 32]);
        let e = verify_consistency(3, 5, &old, &root, &proof).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "consistency proof has {} hashes, expected {}",
                proof.len(),
                proof.len() - 1
            )
        );
    }

    #[test]
    fn degenerate_consistency_cases() {
        let (log, _) = log_of(8);
        let root = log.root();
        let r4 = log.root_at(4).unwrap();
        // Equal sizes: equal roots and an empty proof.
        assert_eq!(verify_consistency(8, 8, &root, &root, &[]), Ok(()));
        assert_eq!(
            verify_consistency(8, 8, &r4, &root, &[]),
            Err(MerkleError::SameSizeRootMismatch { size: 8 })
        );
        assert_eq!(
            verify_consistency(8, 8, &root, &root, &[root]),
            Err(MerkleError::ConsistencyProofLength {
                got: 1,
                expected: 0
            })
        );
        // Old size 0: the empty root and an empty proof.
        assert_eq!(verify_consistency(0, 8, &EMPTY_ROOT, &root, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]),
            Ok(())
        );
        assert_eq!(
            verify_consistency(0, 8, &r4, &root, &[]),
            Err(MerkleError::EmptyRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &EMPTY_ROOT, &root, &[]),
            Err(MerkleError::EmptyRootMismatch)
        );
        // A power-of-two old size never carries the old root in the proof.
        let proof = log.consistency_proof(4, 8).unwrap();
        assert_eq!(proof.len(), 1);
        assert_eq!(verify_consistency(4, 8, &r4, &root, &proof), Ok(()));
        assert_eq!(
            verify_consistency(4, 8, &r4, &root, &[]),
            Err(MerkleError::ConsistencyProofLength {
                got: 0,
                expected: 1
            })
        );
    }

    // ---- Property tests ----

    /// (leaf count, tree size, leaf index) with 1 <= size <= count and index < size.
    fn log_size_index() -> impl Strategy<Value = (u64, u64, u64)> {
        (1u64..300)
            .prop_flat_map(|n| (Just(n), 1..=n))
            .prop_flat_map(|(n, size)| (Just(n), Just(size), 0..size))
    }

    /// (leaf count, old size, new size) with 1 <= old <= new <= count.
    fn log_old_new() -> impl Strategy<Value = (u64, u64, u64)> {
        (1u64..300)
            .prop_flat_map(|n| (Just(n), 1..=n))
            .prop_flat_map(|(n, new)| (Just(n), 1..=new, Just(new)))
    }

    fn arb_hash() -> impl Strategy<Value = Hash> {
        any::<[u8; 32]>()
    }

    proptest! {
        #[test]
        fn inclusion_proofs_verify_and_tampering_fails(
            (n, size, index) in log_size_index(),
            flip in any::<(prop::sample::Index, u8)>(),
            other in any::<prop::sample::Index>(),
            extra in arb_hash(),
        ) {
            let (log, d) = log_of(n);
            let leaf = d[index as usize];
            let root = log.root_at(size).unwrap();
            let proof = log.inclusion_proof(index, size).unwrap();
            prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));

            // Any flipped bit in a proof hash.
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let i = flip.0.index(bad.len());
                bad[i][usize::from(flip.1 / 8) % 32] ^= 1 << (flip.1 % 8);
                prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
            }
            // A flipped bit in the leaf or in the root.
            let mut bad_leaf = leaf;
            bad_leaf[usize::from(flip.1) % 32] ^= 1;
            prop_assert!(verify_inclusion(&bad_leaf, index, size, &proof, &root).is_err());
            let mut bad_root = root;
            bad_root[usize::from(flip.1) % 32] ^= 0x80;
            prop_assert!(verify_inclusion(&leaf, index, size, &proof, &bad_root).is_err());
            // A wrong index, in or out of the tree.
            let wrong = other.index(size as usize + 1) as u64;
            if wrong != index {
                prop_assert!(verify_inclusion(&leaf, wrong, size, &proof, &root).is_err());
            }
            // A wrong size, checked against the true root of that size. (RFC 9162 proofs bind
            // the size only through the root: the same path can be valid for several sizes.)
            let wrong_size = other.index(n as usize) as u64 + 1;
            if wrong_size != size {
                let wrong_root = log.root_at(wrong_size).unwrap();
                prop_assert!(
                    verify_inclusion(&leaf, index, wrong_size, &proof, &wrong_root).is_err()
                );
            }
            // Truncated and extended proofs.
            if !proof.is_empty() {
                let short = &proof[..proof.len() - 1];
                prop_assert_eq!(
                    verify_inclusion(&leaf, index, size, short, &root),
                    Err(MerkleError::InclusionProofLength {
                        got: proof.len() - 1,
                        expected: proof.len(),
                    })
                );
            }
            let mut long = proof.clone();
            long.push(extra);
            prop_assert_eq!(
                verify_inclusion(&leaf, index, size, &long, &root),
                Err(MerkleError::InclusionProofLength {
                    got: proof.len() + 1,
                    expected: proof.len(),
                })
            );
        }

        #[test]
        fn consistency_proofs_verify_and_tampering_fails(
            (n, old, new) in log_old_new(),
            flip in any::<(prop::sample::Index, u8)>(),
            other in any::<prop::sample::Index>(),
            extra in arb_hash(),
        ) {
            let (log, _) = log_of(n);
            let old_root = log.root_at(old).unwrap();
            let new_root = log.root_at(new).unwrap();
            let proof = log.consistency_proof(old, new).unwrap();
            prop_assert_eq!(verify_consistency(old, new, &old_root, &new_root, &proof), Ok(()));

            // Any flipped bit in a proof hash.
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let i = flip.0.index(bad.len());
                bad[i][usize::from(flip.1 / 8) % 32] ^= 1 << (flip.1 % 8);
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err());
            }
            // A flipped bit in either root.
            let mut bad_root = old_root;
            bad_root[usize::from(flip.1) % 32] ^= 1;
            prop_assert!(verify_consistency(old, new, &bad_root, &new_root, &proof).is_err());
            let mut bad_root = new_root;
            bad_root[usize::from(flip.1) % 32] ^= 1;
            prop_assert!(verify_consistency(old, new, &old_root, &bad_root, &proof).is_err());
            // A wrong old size or new size, with the true roots of those sizes.
            let wrong = other.index(n as usize + 1) as u64;
            // (An old size of 0 with an empty proof is consistent with anything: skip it.)
            if wrong != old && !(wrong == 0 && proof.is_empty()) {
                let r = log.root_at(wrong).unwrap();
                prop_assert!(verify_consistency(wrong, new, &r, &new_root, &proof).is_err());
            }
            if wrong != new {
                let r = log.root_at(wrong).unwrap();
                prop_assert!(verify_consistency(old, wrong, &old_root, &r, &proof).is_err());
            }
            // Truncated and extended proofs.
            if !proof.is_empty() {
                let short = &proof[..proof.len() - 1];
                prop_assert_eq!(
                    verify_consistency(old, new, &old_root, &new_root, short),
                    Err(MerkleError::ConsistencyProofLength {
                        got: proof.len() - 1,
                        expected: proof.len(),
                    })
                );
            }
            let mut long = proof.clone();
            long.push(extra);
            prop_assert_eq!(
                verify_consistency(old, new, &old_root, &new_root, &long),
                Err(MerkleError::ConsistencyProofLength {
                    got: proof.len() + 1,
                    expected: proof.len(),
                })
            );
        }

        #[test]
        fn verify_inclusion_never_panics(
            leaf in arb_hash(),
            index in prop_oneof![any::<u64>(), 0u64..70, Just(u64::MAX)],
            size in prop_oneof![any::<u64>(), 0u64..70, Just(u64::MAX)],
            proof in prop::collection::vec(arb_hash(), 0..80),
            root in arb_hash(),
        ) {
            let _ = verify_inclusion(&leaf, index, size, &proof, &root);
        }

        #[test]
        fn verify_consistency_never_panics(
            old in prop_oneof![any::<u64>(), 0u64..70, Just(u64::MAX)],
            new in prop_oneof![any::<u64>(), 0u64..70, Just(u64::MAX)],
            old_root in prop_oneof![arb_hash(), Just(EMPTY_ROOT)],
            new_root in arb_hash(),
            proof in prop::collection::vec(arb_hash(), 0..140),
        ) {
            let _ = verify_consistency(old, new, &old_root, &new_root, &proof);
        }

        #[test]
        fn right_length_garbage_proofs_are_rejected_without_panic(
            index in any::<u64>(),
            size in 1u64..=u64::MAX,
            old in 1u64..=u64::MAX,
            new in any::<u64>(),
            h in arb_hash(),
        ) {
            // Reach the hashing loops with huge sizes by giving exactly the expected length.
            let index = index % size;
            let proof = vec![h; inclusion_proof_len(index, size)];
            prop_assert!(verify_inclusion(&h, index, size, &proof, &[0; 32]).is_err());
            if old < new {
                let proof = vec![h; consistency_proof_len(old, new)];
                prop_assert!(verify_consistency(old, new, &h, &[0; 32], &proof).is_err());
            }
        }
    }
}

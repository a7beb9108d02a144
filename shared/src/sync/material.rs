//! Replicas whose key material a person must supply. A replica of a primary with imported key
//! material (origin `EXTERNAL`) is created `PendingImport`: KMS never copies imported material,
//! so someone imports the same material into each replica (KMS Developer Guide, "Importing key
//! material into multi-Region keys"). The replicator mirrors everything else meanwhile and says,
//! on every sync, which Region waits and how to import; it never retries for it. Once imported,
//! a replica whose current key material is not the primary's (a rotation of imported material
//! that waits for an import there) is reported the same way.

use crate::model::KeyInfo;

/// The conflict a `PendingImport` replica in `region` gets: what a person must do there.
pub(super) fn pending_import(region: &str, key_id: &str) -> String {
    format!(
        "the replica in {region} is PendingImport: its key material was imported on the \
         primary (origin EXTERNAL), and KMS never copies imported material. Until the same \
         material is imported there, the replica cannot encrypt or decrypt; its policy, aliases, \
         tags and description are kept in sync meanwhile. Import it with `aws kms \
         get-parameters-for-import --region {region} --key-id {key_id} --wrapping-algorithm \
         RSAES_OAEP_SHA_256 --wrapping-key-spec RSA_4096` (a wrapping key and import token of \
         this replica's own), wrap the primary's material with that public key, then `aws kms \
         import-key-material --region {region} --key-id {key_id} --encrypted-key-material \
         fileb://material.bin --import-token fileb://token.bin --expiration-model \
         KEY_MATERIAL_DOES_NOT_EXPIRE`; material that differs from the primary's is refused"
    )
}

/// The conflict of an imported-material replica whose `CurrentKeyMaterialId` is not its
/// primary's, if it is one: what it encrypts from now on differs, so say what to import.
pub(super) fn drift(primary: &KeyInfo, replica: &KeyInfo) -> Option<String> {
    let (p, r) = (
        primary.current_key_material_id.as_deref()?,
        replica.current_key_material_id.as_deref()?,
    );
    if !primary.imported_material || p == r {
        return None;
    }
    let (region, key_id) = (&replica.region, &replica.key_id);
    Some(format!(
        "the replica in {region} holds key material {r}, its primary in {} holds {p}: a \
         rotation of imported material waits for an import there (KMS never copies imported \
         material). Until it is done, what the primary encrypts with its current material may \
         not decrypt in {region}. Import the primary's current material into the replica \
         (`aws kms get-parameters-for-import --region {region} --key-id {key_id} ...`, then \
         `aws kms import-key-material --region {region} --key-id {key_id} --import-type \
         NEW_KEY_MATERIAL ...`) and check `aws kms list-key-rotations --region {} --key-id \
         {key_id}` on the primary",
        primary.region, primary.region
    ))
}

//! Replicas whose key material a person must supply. A replica of a primary with imported key
//! material (origin `EXTERNAL`) is created `PendingImport`: KMS never copies imported material,
//! so someone imports the same material into each replica (KMS Developer Guide, "Importing key
//! material into multi-Region keys"). The replicator mirrors everything else meanwhile and says,
//! on every sync, which Region waits and how to import; it never retries for it.

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

//! A Yjs client over the notebook socket: a `yrs` document per cell, fed by `yjs` events.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update};

use crate::common::ws::WsClient;

/// One co-editor: its socket and its copy of each cell's document.
pub struct YClient {
    pub ws: WsClient,
    pub docs: HashMap<String, Doc>,
    /// `yjs` events with a `seq` received so far (relayed updates, not the join states).
    pub relayed: usize,
    /// Other events received while waiting for `yjs` ones.
    pub others: Vec<Value>,
}

impl YClient {
    /// Joins and reads the full state of the notebook's `cells` (sent on join).
    pub async fn join(base: &str, nb: &str, token: &str, cells: usize) -> YClient {
        let mut ws = WsClient::join(base, nb, token).await;
        ws.keep_yjs = true;
        let mut client = YClient {
            ws,
            docs: HashMap::new(),
            relayed: 0,
            others: Vec::new(),
        };
        for _ in 0..cells {
            let v = client.next_yjs().await;
            assert!(v.get("seq").is_none(), "join state carries no seq: {v}");
        }
        client
    }

    /// Joins again on a new socket keeping the documents (what was typed while away stays),
    /// merges the room's full states into them and sends the room what it lacks, the way
    /// the web UI does after a dropped connection.
    pub async fn rejoin(&mut self, base: &str, nb: &str, token: &str, cells: usize) {
        let mut ws = WsClient::join(base, nb, token).await;
        ws.keep_yjs = true;
        self.ws = ws;
        for _ in 0..cells {
            let v = loop {
                let v = self.ws.json(Duration::from_secs(20)).await;
                if v["type"] == "yjs" {
                    break v;
                }
                self.others.push(v);
            };
            assert!(v.get("seq").is_none(), "join state carries no seq: {v}");
            let cell = v["cellId"].as_str().expect("cellId").to_string();
            let bytes = BASE64
                .decode(v["update"].as_str().expect("update"))
                .expect("base64 update");
            let update = Update::decode_v1(&bytes).expect("a Yjs v1 update");
            let server = update.state_vector();
            self.apply(&v);
            let doc = self.docs.get(&cell).expect("a document for the cell");
            let missing = doc.transact().encode_state_as_update_v1(&server);
            self.send_update(&cell, &missing).await;
        }
    }

    /// Reads until the next `yjs` event and applies it.
    pub async fn next_yjs(&mut self) -> Value {
        loop {
            let v = self.ws.json(Duration::from_secs(20)).await;
            if v["type"] == "yjs" {
                self.apply(&v);
                if v.get("seq").is_some() {
                    self.relayed += 1;
                }
                return v;
            }
            self.others.push(v);
        }
    }

    /// Reads until `count` relayed updates have arrived in total.
    pub async fn until_relayed(&mut self, count: usize) {
        while self.relayed < count {
            self.next_yjs().await;
        }
    }

    fn apply(&mut self, v: &Value) {
        let cell = v["cellId"].as_str().expect("cellId").to_string();
        let bytes = BASE64
            .decode(v["update"].as_str().expect("update"))
            .expect("base64 update");
        let doc = self.docs.entry(cell).or_default();
        let update = Update::decode_v1(&bytes).expect("a Yjs v1 update");
        doc.transact_mut()
            .apply_update(update)
            .expect("update applies");
    }

    /// The cell's text as this client sees it.
    pub fn text(&self, cell: &str) -> String {
        let doc = self.docs.get(cell).expect("a document for the cell");
        let text = doc.get_or_insert_text("code");
        let txn = doc.transact();
        text.get_string(&txn)
    }

    /// Edits the cell locally (`edit` gets the text and a transaction) and sends the update.
    pub async fn edit(
        &mut self,
        cell: &str,
        edit: impl FnOnce(&yrs::TextRef, &mut yrs::TransactionMut),
    ) {
        let update = self.local_edit(cell, edit);
        self.send_update(cell, &update).await;
    }

    /// Edits the cell locally; answers the update without sending it.
    pub fn local_edit(
        &mut self,
        cell: &str,
        edit: impl FnOnce(&yrs::TextRef, &mut yrs::TransactionMut),
    ) -> Vec<u8> {
        let doc = self.docs.get(cell).expect("a document for the cell");
        let text = doc.get_or_insert_text("code");
        let mut txn = doc.transact_mut();
        edit(&text, &mut txn);
        txn.encode_update_v1()
    }

    /// Sends an update for the cell.
    pub async fn send_update(&mut self, cell: &str, update: &[u8]) {
        self.ws
            .send(json!({"type": "yjs", "cellId": cell, "update": BASE64.encode(update)}))
            .await;
    }

    /// Replaces the whole text (a convenience for simple edits).
    pub async fn set_text(&mut self, cell: &str, code: &str) {
        let code = code.to_string();
        self.edit(cell, move |text, txn| {
            let len = text.len(txn);
            text.remove_range(txn, 0, len);
            text.insert(txn, 0, &code);
        })
        .await;
    }
}

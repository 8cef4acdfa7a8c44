//! The classic Docker builder (`POST /build`): a Dockerfile run step by
//! step on the engine's own primitives. Entry point: [`start`].
//!
//! * `RUN` is a real container of the current image (the build-time `ARG`s
//!   in its environment, the build's network mode, extra hosts and shm
//!   size), its output streamed as the step's output, then committed as a
//!   layer ([`crate::engine::Engine::commit`]).
//! * `COPY`/`ADD` write a tar of the sources into a created (never started)
//!   container of the current image through the escape-proof unpacker of
//!   `docker cp` ([`crate::copy`]), then commit it; `WORKDIR` does the same
//!   when the directory is missing. Sources are resolved in the context
//!   with `RESOLVE_BENEATH` ([`context`]), in another stage's image with
//!   `RESOLVE_IN_ROOT`.
//! * Metadata steps (`ENV`, `LABEL`, `CMD`, ...) make config-only images
//!   ([`strato_image::ImageStore::derive`]).
//! * Every step image records its parent and, as `container_config`, the
//!   key of the step (its command with the copied files' digest, and the
//!   configuration it ran with): a later build whose step has the same
//!   parent and key reuses it (` ---> Using cache`), as dockerd does.
//!
//! The stream is dockerd's: `Step N/M : …`, ` ---> <id>`, RUN output
//! (stderr in red escapes), `{"aux":{"ID":…}}`, `Successfully built/tagged`;
//! a failure ends it with an `error`/`errorDetail` item. A failed build
//! tags nothing and leaves no container (unless `rm=false`).

pub mod context;
pub mod dockerfile;
pub mod ignore;
pub mod words;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{json, Map, Value};
use strato_api::types::*;
use strato_api::{ApiError, Backend, ByteStream, ProgressStream, StreamKind};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::backend::EngineBackend;
use crate::copy;
use crate::streams::{channel_stream, BodyReader};
use dockerfile::Instruction;
use words::Vars;

/// Build args every build accepts without an `ARG` (dockerd's list); they
/// reach `RUN` but not the history or the cache key.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a build stopped: the message of the stream's error item, with the
/// exit code of a failed `RUN`.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: Option<i64>,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: None,
        }
    }

    fn into_message(self) -> JsonMessage {
        JsonMessage {
            error: Some(self.message.clone()),
            error_detail: Some(ErrorDetail {
                code: self.code,
                message: self.message,
            }),
            ..Default::default()
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure::new(e.message)
    }
}

type Res<T> = Result<T, Failure>;

/// Checks the options, then runs the build on its own task; its progress
/// is the returned stream. Bad tags are refused before anything runs.
pub fn start(
    b: Arc<EngineBackend>,
    opts: BuildOptions,
    body: ByteStream,
) -> Result<ProgressStream, ApiError> {
    let mut tags = Vec::new();
    for t in &opts.tags {
        let r = strato_image::Reference::parse(t)
            .map_err(|e| ApiError::bad_parameter(format!("invalid tag {t:?}: {e}")))?;
        if r.digest().is_some() {
            return Err(ApiError::bad_parameter(format!(
                "invalid tag {t:?}: a build result is tagged by name:tag, not by digest"
            )));
        }
        let r = if r.tag().is_none() {
            r.with_tag("latest")
        } else {
            r
        };
        tags.push(r.familiar());
    }
    let (tx, rx) = mpsc::channel(64);
    let data_root = b.engine().config().data_root.clone();
    let dir = data_root.join("builds").join(&crate::ids::new_id()[..16]);
    let span = tracing::info_span!("build", dir = %dir.display());
    tokio::spawn(
        async move {
            let mut bld = Builder {
                b,
                opts,
                tags,
                tx: tx.clone(),
                dir,
                containers: Vec::new(),
                escape: '\\',
                used_args: BTreeSet::new(),
                meta: Vars::new(),
                stages: Vec::new(),
                step: 0,
                total: 0,
                cache_ok: None,
                seq: 0,
            };
            let res = bld.run(body).await;
            bld.cleanup(res.is_ok()).await;
            if let Err(f) = res {
                tracing::info!(error = %f.message, "build failed");
                let _ = tx.send(f.into_message()).await;
            }
        }
        .instrument(span),
    );
    Ok(channel_stream(rx))
}

/// The state of the stage being built.
#[derive(Debug, Clone, Default)]
struct State {
    /// The current image (`None`: `FROM scratch` with nothing on it yet).
    image: Option<String>,
    /// The image config's `config` object.
    config: Value,
    author: String,
    /// The stage's declared `ARG`s that have a value.
    args: BTreeMap<String, String>,
    /// `CMD` given in this stage (then `ENTRYPOINT` keeps it).
    cmd_set: bool,
}

impl State {
    fn obj(&mut self) -> &mut Map<String, Value> {
        if !self.config.is_object() {
            self.config = json!({});
        }
        self.config.as_object_mut().expect("an object")
    }

    fn env(&self) -> Vec<String> {
        self.config["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(format!("{key}={value}"));
        self.obj().insert("Env".into(), json!(env));
    }

    /// Variables for substitution: the ARGs, then ENV over them.
    fn vars(&self) -> Vars {
        let mut v = self.args.clone();
        for e in self.env() {
            if let Some((k, val)) = e.split_once('=') {
                v.insert(k.to_string(), val.to_string());
            }
        }
        v
    }

    fn shell(&self) -> Vec<String> {
        self.config["Shell"]
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn str_field(&self, k: &str) -> String {
        self.config[k].as_str().unwrap_or_default().to_string()
    }
}

struct Builder {
    b: Arc<EngineBackend>,
    opts: BuildOptions,
    /// Familiar `name:tag` forms of `opts.tags`.
    tags: Vec<String>,
    tx: mpsc::Sender<JsonMessage>,
    /// `DATA_ROOT/builds/<id>`: the context and staged files; removed at the end.
    dir: PathBuf,
    /// Build containers not removed yet.
    containers: Vec<String>,
    escape: char,
    /// Build args that an `ARG` (or the proxy list) consumed.
    used_args: BTreeSet<String>,
    /// Values of the `ARG`s before the first `FROM`.
    meta: Vars,
    /// Finished stages: name and image.
    stages: Vec<(Option<String>, Option<String>)>,
    step: usize,
    total: usize,
    /// With `cachefrom`: the only images the cache may hand out.
    cache_ok: Option<BTreeSet<String>>,
    seq: usize,
}

fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn api_err(e: impl std::fmt::Display) -> Failure {
    Failure::new(e.to_string())
}

impl Builder {
    fn ctx(&self) -> PathBuf {
        self.dir.join("context")
    }

    async fn say(&self, text: impl Into<String>) {
        if !self.opts.quiet {
            let _ = self.tx.send(JsonMessage::stream(text)).await;
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Res<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Failure::new(format!("build worker failed: {e}")))?
            .map_err(Failure::new)
    }

    async fn run(&mut self, body: ByteStream) -> Res<()> {
        let ctx = self.ctx();
        fs::create_dir_all(&ctx)
            .map_err(|e| Failure::new(format!("create {}: {e}", ctx.display())))?;
        let name = if self.opts.dockerfile.is_empty() {
            "Dockerfile".to_string()
        } else {
            self.opts.dockerfile.clone()
        };
        if self.opts.remote.is_empty() {
            let reader = BodyReader::spawn(body);
            let ctx = ctx.clone();
            self.blocking(move || context::unpack_context(reader, &ctx))
                .await?;
        } else {
            drop(body);
            let remote = self.opts.remote.clone();
            self.remote_context(&remote, &ctx, &name).await?;
        }
        let text = {
            let (ctx, name) = (ctx.clone(), name.clone());
            self.blocking(move || {
                let t = context::read_dockerfile(&ctx, &name)?;
                context::apply_dockerignore(&ctx)?;
                Ok(t)
            })
            .await?
        };
        let df = dockerfile::parse(&text).map_err(api_err)?;
        self.escape = df.escape;
        let mut st = dockerfile::stages(&df).map_err(api_err)?;
        if !self.opts.target.is_empty() {
            let t = self.opts.target.to_ascii_lowercase();
            let i = st
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&t))
                .ok_or_else(|| {
                    Failure::new(format!(
                        "failed to reach build target {} in Dockerfile",
                        self.opts.target
                    ))
                })?;
            st.stages.truncate(i + 1);
        }
        let labels = self.label_instruction()?;
        self.total = st.meta_args.len()
            + st.stages
                .iter()
                .map(|s| 1 + s.instructions.len())
                .sum::<usize>()
            + usize::from(labels.is_some());
        self.cache_ok = self.cache_sources().await?;
        for a in &st.meta_args {
            self.print_step(a).await;
            self.meta_arg(a)?;
        }
        let n = st.stages.len();
        let mut last = State::default();
        for (i, stage) in st.stages.iter().enumerate() {
            let mut state = self.from(&stage.from).await?;
            for ins in &stage.instructions {
                self.step_check()?;
                self.print_step(ins).await;
                self.dispatch(&mut state, ins).await?;
                self.say_image(&state).await;
            }
            if i + 1 == n {
                if let Some(l) = &labels {
                    self.print_step(l).await;
                    self.dispatch(&mut state, l).await?;
                    self.say_image(&state).await;
                }
            }
            let state = self.ensure_image(state).await?;
            self.stages.push((stage.name.clone(), state.image.clone()));
            last = state;
        }
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                names.join(" ")
            ))
            .await;
        }
        let id = last
            .image
            .ok_or_else(|| Failure::new("No image was generated. Is your Dockerfile empty?"))?;
        let _ = self
            .tx
            .send(JsonMessage {
                aux: Some(json!({ "ID": id })),
                ..Default::default()
            })
            .await;
        if self.opts.quiet {
            let _ = self.tx.send(JsonMessage::stream(format!("{id}\n"))).await;
        } else {
            self.say(format!("Successfully built {}\n", short(&id)))
                .await;
        }
        for t in self.tags.clone() {
            let images = self.b.engine().images().clone();
            let (i2, t2) = (id.clone(), t.clone());
            self.blocking(move || images.tag(&i2, &t2).map_err(|e| e.to_string()))
                .await?;
            self.b.emit("image", "tag", &id, &[("name", &t)]);
            self.say(format!("Successfully tagged {t}\n")).await;
        }
        Ok(())
    }

    /// `labels=`: a `LABEL` step at the end of the last stage (dockerd
    /// appends the same instruction).
    fn label_instruction(&self) -> Res<Option<Instruction>> {
        if self.opts.labels.is_empty() {
            return Ok(None);
        }
        let mut line = String::from("LABEL");
        for (k, v) in &self.opts.labels {
            line.push_str(&format!(
                " {}={}",
                serde_json::to_string(k).unwrap_or_default(),
                serde_json::to_string(v)
                    .unwrap_or_default()
                    .replace('$', "\\$")
            ));
        }
        dockerfile::instruction(&line, 0).map(Some).map_err(api_err)
    }

    /// The images whose ancestors may serve as cache (`cachefrom`).
    async fn cache_sources(&self) -> Res<Option<BTreeSet<String>>> {
        if self.opts.cache_from.is_empty() {
            return Ok(None);
        }
        let images = self.b.engine().images().clone();
        let refs = self.opts.cache_from.clone();
        let set = self
            .blocking(move || {
                let mut ok = BTreeSet::new();
                for r in refs {
                    let mut cur = images.inspect(&r).ok();
                    while let Some(d) = cur {
                        if !ok.insert(d.id.to_string()) {
                            break;
                        }
                        cur = d.parent.and_then(|p| images.inspect(p.as_str()).ok());
                    }
                }
                Ok(ok)
            })
            .await?;
        Ok(Some(set))
    }

    fn step_check(&self) -> Res<()> {
        if self.tx.is_closed() {
            return Err(Failure::new(
                "the build was cancelled: the client went away",
            ));
        }
        Ok(())
    }

    async fn print_step(&mut self, ins: &Instruction) {
        self.step += 1;
        self.say(format!(
            "Step {}/{} : {}\n",
            self.step, self.total, ins.original
        ))
        .await;
    }

    async fn say_image(&self, st: &State) {
        if let Some(id) = &st.image {
            self.say(format!(" ---> {}\n", short(id))).await;
        }
    }

    fn meta_arg(&mut self, ins: &Instruction) -> Res<()> {
        for w in words::split_raw(&ins.rest, self.escape) {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w.clone(), None),
            };
            let value = match self.opts.build_args.get(&name) {
                Some(Some(v)) => Some(v.clone()),
                _ => default
                    .map(|d| words::expand(&d, &self.meta, self.escape))
                    .transpose()
                    .map_err(api_err)?,
            };
            if self.opts.build_args.contains_key(&name) {
                self.used_args.insert(name.clone());
            }
            if let Some(v) = value {
                self.meta.insert(name, v);
            }
        }
        Ok(())
    }

    /// `FROM`: the base image, its config and its `ONBUILD` triggers.
    async fn from(&mut self, ins: &Instruction) -> Res<State> {
        self.step_check()?;
        self.print_step(ins).await;
        let w = words::expand_words(&ins.rest, &self.meta, self.escape).map_err(api_err)?;
        let base = w.first().cloned().unwrap_or_default();
        if base.is_empty() {
            return Err(Failure::new(
                "base name (FROM) should not be blank: check the ARG it uses",
            ));
        }
        if let Some(p) = ins.flag("platform") {
            let p = words::expand(p, &self.meta, self.escape).map_err(api_err)?;
            let here = format!("linux/{}", strato_api::server::go_arch());
            if !p.is_empty() && p != "linux" && !p.starts_with(&here) {
                return Err(Failure::new(format!(
                    "FROM --platform={p}: this engine builds for {here} only"
                )));
            }
        }
        let mut st = State::default();
        let lower = base.to_ascii_lowercase();
        let stage_image = self
            .stages
            .iter()
            .find(|(n, _)| n.as_deref() == Some(lower.as_str()))
            .map(|(_, i)| i.clone())
            .or_else(|| {
                base.parse::<usize>()
                    .ok()
                    .and_then(|i| self.stages.get(i).map(|(_, img)| img.clone()))
            });
        let image = match stage_image {
            Some(img) => img,
            None if lower == "scratch" => None,
            None => Some(self.local_image(&base).await?),
        };
        if let Some(id) = &image {
            let (cfg, author) = self.image_config(id).await?;
            st.config = cfg;
            st.author = author;
        }
        st.image = image;
        if !st.config.is_object() {
            st.config = json!({});
        }
        if !st.env().iter().any(|e| e.starts_with("PATH=")) {
            let (k, v) = DEFAULT_PATH.split_once('=').expect("PATH=");
            st.set_env(k, v);
        }
        self.say_image(&st).await;
        let triggers: Vec<String> = st.config["OnBuild"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        st.obj().remove("OnBuild");
        if !triggers.is_empty() {
            self.say(format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ))
            .await;
            for t in triggers {
                let ins = dockerfile::instruction(&t, ins.line).map_err(api_err)?;
                self.dispatch(&mut st, &ins).await?;
            }
            self.say_image(&st).await;
        }
        Ok(st)
    }

    async fn local_image(&self, reference: &str) -> Res<String> {
        let images = self.b.engine().images().clone();
        let r = reference.to_string();
        tokio::task::spawn_blocking(move || images.inspect(&r))
            .await
            .map_err(api_err)?
            .map(|d| d.id.to_string())
            .map_err(|_| {
                Failure::new(format!(
                    "pull access denied for {reference}: the image is not in this engine's store and builds use local images only: pull or load it first"
                ))
            })
    }

    async fn image_config(&self, id: &str) -> Res<(Value, String)> {
        let images = self.b.engine().images().clone();
        let id = id.to_string();
        self.blocking(move || {
            let d: strato_image::Digest = id.parse().map_err(|e| format!("{e}"))?;
            let p = images
                .blob_path(&d)
                .ok_or_else(|| format!("the config of image {id} is missing"))?;
            let bytes = fs::read(&p).map_err(|e| format!("read {}: {e}", p.display()))?;
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("the config of image {id}: {e}"))?;
            Ok((
                v["config"].clone(),
                v["author"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .await
    }

    /// The cached image for `key` on the current image, if any may be used.
    async fn probe(&self, st: &State, key: &Value) -> Res<Option<String>> {
        if self.opts.no_cache {
            return Ok(None);
        }
        let images = self.b.engine().images().clone();
        let (parent, key) = (st.image.clone(), key.clone());
        let hit = self
            .blocking(move || {
                images
                    .find_child(parent.as_deref(), &key)
                    .map_err(|e| e.to_string())
            })
            .await?
            .map(|d| d.to_string());
        Ok(hit.filter(|id| self.cache_ok.as_ref().is_none_or(|ok| ok.contains(id))))
    }

    /// Takes the step from the cache when it can; says so.
    async fn cached(&self, st: &mut State, key: &Value) -> Res<bool> {
        if let Some(id) = self.probe(st, key).await? {
            self.say(" ---> Using cache\n").await;
            st.image = Some(id);
            return Ok(true);
        }
        Ok(false)
    }

    fn spec(&self, st: &State, created_by: String, key: Value) -> strato_image::CommitSpec {
        strato_image::CommitSpec {
            config: st.config.clone(),
            author: st.author.clone(),
            comment: String::new(),
            created_by,
            tag: None,
            container_config: key,
        }
    }

    /// A metadata step: a config-only image (or the cached one).
    async fn meta_commit(&self, st: &mut State, ins: &Instruction) -> Res<()> {
        let text = format!("#(nop) {}", ins.original);
        let key = json!({ "Cmd": ["/bin/sh", "-c", text], "Config": st.config });
        if self.cached(st, &key).await? {
            return Ok(());
        }
        self.config_only_step(st, ins, key).await
    }

    /// A step that changes only the configuration: a child image of the
    /// current one without a layer, as dockerd makes for metadata steps.
    async fn config_only_step(&self, st: &mut State, ins: &Instruction, key: Value) -> Res<()> {
        let spec = self.spec(st, format!("/bin/sh -c #(nop)  {}", ins.original), key);
        let images = self.b.engine().images().clone();
        let parent = st.image.clone();
        let id = self
            .blocking(move || {
                images
                    .derive(parent.as_deref(), &spec)
                    .map_err(|e| e.to_string())
            })
            .await?;
        st.image = Some(id.to_string());
        Ok(())
    }

    /// An image to start containers from (`FROM scratch` gets an empty one).
    async fn ensure_image(&self, mut st: State) -> Res<State> {
        if st.image.is_none() {
            let ins = dockerfile::instruction("FROM scratch", 0).map_err(api_err)?;
            self.meta_commit(&mut st, &ins).await?;
        }
        Ok(st)
    }

    async fn dispatch(&mut self, st: &mut State, ins: &Instruction) -> Res<()> {
        let esc = self.escape;
        let vars = st.vars();
        let ex = |s: &str| words::expand(s, &vars, esc).map_err(api_err);
        let exw = |s: &str| words::expand_words(s, &vars, esc).map_err(api_err);
        match ins.keyword.as_str() {
            "RUN" => return self.run_step(st, ins).await,
            "COPY" | "ADD" => return self.copy_step(st, ins).await,
            "WORKDIR" => {
                let w = ex(&ins.rest)?;
                let dir = if w.starts_with('/') {
                    w
                } else {
                    let cur = st.str_field("WorkingDir");
                    format!("{}/{w}", if cur.is_empty() { "/" } else { &cur })
                };
                let dir = format!("/{}", ignore::clean(dir.trim_start_matches('/')));
                let dir = if dir == "/." { "/".to_string() } else { dir };
                st.obj().insert("WorkingDir".into(), json!(dir));
                return self.workdir_step(st, ins, &dir).await;
            }
            "ENV" => {
                let kv = words::key_values(&ins.rest, esc, "ENV").map_err(Failure::new)?;
                for (k, v) in kv {
                    // Each pair sees the ones before it.
                    let vars = st.vars();
                    let k = words::expand(&k, &vars, esc).map_err(api_err)?;
                    let v = words::expand(&v, &vars, esc).map_err(api_err)?;
                    st.set_env(&k, &v);
                }
            }
            "LABEL" => {
                let kv = words::key_values(&ins.rest, esc, "LABEL").map_err(Failure::new)?;
                let mut pairs = Vec::new();
                for (k, v) in kv {
                    pairs.push((ex(&k)?, ex(&v)?));
                }
                let labels = st.obj().entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                let m = labels.as_object_mut().expect("an object");
                for (k, v) in pairs {
                    m.insert(k, json!(v));
                }
            }
            "ARG" => {
                for w in words::split_raw(&ins.rest, esc) {
                    let (name, default) = match w.split_once('=') {
                        Some((n, d)) => (n.to_string(), Some(ex(d)?)),
                        None => (w.clone(), None),
                    };
                    let value = match self.opts.build_args.get(&name) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => default.or_else(|| self.meta.get(&name).cloned()),
                    };
                    if self.opts.build_args.contains_key(&name) {
                        self.used_args.insert(name.clone());
                    }
                    match value {
                        Some(v) => {
                            st.args.insert(name, v);
                        }
                        None => {
                            st.args.remove(&name);
                        }
                    }
                }
            }
            "EXPOSE" => {
                let mut ports = Vec::new();
                for p in exw(&ins.rest)? {
                    ports.push(crate::commit::exposed_port(&p).map_err(Failure::new)?);
                }
                let m = st.obj().entry("ExposedPorts").or_insert_with(|| json!({}));
                if !m.is_object() {
                    *m = json!({});
                }
                for p in ports {
                    m.as_object_mut().expect("an object").insert(p, json!({}));
                }
            }
            "VOLUME" => {
                let list = match &ins.json {
                    Some(l) => l.iter().map(|v| ex(v)).collect::<Res<Vec<_>>>()?,
                    None => exw(&ins.rest)?,
                };
                if list.iter().any(|v| v.trim().is_empty()) || list.is_empty() {
                    return Err(Failure::new("VOLUME specified can not be an empty string"));
                }
                let m = st.obj().entry("Volumes").or_insert_with(|| json!({}));
                if !m.is_object() {
                    *m = json!({});
                }
                for v in list {
                    m.as_object_mut().expect("an object").insert(v, json!({}));
                }
            }
            "USER" => {
                let u = ex(&ins.rest)?;
                st.obj().insert("User".into(), json!(u));
            }
            "STOPSIGNAL" => {
                let s = ex(&ins.rest)?;
                st.obj().insert("StopSignal".into(), json!(s));
            }
            "MAINTAINER" => st.author = ins.rest.clone(),
            "SHELL" => {
                let Some(l) = ins.json.clone().filter(|l| !l.is_empty()) else {
                    return Err(Failure::new(
                        "SHELL requires the arguments to be in JSON form: SHELL [\"executable\", \"parameters\"]",
                    ));
                };
                st.obj().insert("Shell".into(), json!(l));
            }
            "CMD" => {
                let cmd = self.command(st, ins);
                st.obj().insert("Cmd".into(), json!(cmd));
                st.cmd_set = true;
            }
            "ENTRYPOINT" => {
                let ep = self.command(st, ins);
                st.obj().insert("Entrypoint".into(), json!(ep));
                if !st.cmd_set {
                    st.obj().remove("Cmd");
                }
            }
            "HEALTHCHECK" => {
                let mut text = String::new();
                for (k, v) in &ins.flags {
                    text.push_str(&format!("--{k}={} ", v.as_deref().unwrap_or("")));
                }
                text.push_str(&ins.rest);
                let h = crate::commit::healthcheck(&text).map_err(Failure::new)?;
                st.obj().insert("Healthcheck".into(), h);
            }
            "ONBUILD" => {
                let t = dockerfile::instruction(&ins.rest, ins.line).map_err(api_err)?;
                if matches!(t.keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(Failure::new(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        t.keyword
                    )));
                }
                let m = st.obj().entry("OnBuild").or_insert_with(|| json!([]));
                if !m.is_array() {
                    *m = json!([]);
                }
                m.as_array_mut()
                    .expect("a list")
                    .push(json!(ins.rest.clone()));
            }
            other => {
                return Err(Failure::new(format!(
                    "{other} is not supported by this builder"
                )))
            }
        }
        self.meta_commit(st, ins).await
    }

    /// `CMD`/`ENTRYPOINT`: the exec form as it is, the shell form through
    /// the stage's shell.
    fn command(&self, st: &State, ins: &Instruction) -> Vec<String> {
        match &ins.json {
            Some(l) => l.clone(),
            None if ins.rest.is_empty() => Vec::new(),
            None => {
                let mut c = st.shell();
                c.push(ins.rest.clone());
                c
            }
        }
    }

    fn host_config(&self) -> HostConfig {
        let network_mode = match self.opts.network_mode.as_str() {
            "" | "default" => String::new(),
            m => m.to_string(),
        };
        HostConfig {
            network_mode,
            extra_hosts: (!self.opts.extra_hosts.is_empty()).then(|| self.opts.extra_hosts.clone()),
            shm_size: self.opts.shm_size.unwrap_or(0),
            ..Default::default()
        }
    }

    /// Creates a build container of `image` running `cmd` (never started
    /// for copies).
    async fn create(
        &mut self,
        st: &State,
        image: &str,
        cmd: Vec<String>,
        env: Vec<String>,
    ) -> Res<String> {
        let mut cfg = ContainerCreateConfig::default();
        cfg.config.image = image.to_string();
        cfg.config.cmd = Some(cmd);
        cfg.config.entrypoint = Some(Vec::new());
        cfg.config.env = Some(env);
        cfg.config.user = st.str_field("User");
        cfg.config.working_dir = st.str_field("WorkingDir");
        cfg.config.attach_stdout = true;
        cfg.config.attach_stderr = true;
        cfg.host_config = self.host_config();
        let r = self.b.container_create(None, None, cfg).await?;
        self.containers.push(r.id.clone());
        Ok(r.id)
    }

    async fn remove_container(&mut self, id: &str) -> Res<()> {
        let opts = RemoveOptions {
            force: true,
            volumes: true,
            link: false,
        };
        self.b.container_remove(id, opts).await?;
        self.containers.retain(|c| c != id);
        Ok(())
    }

    async fn commit(&self, st: &mut State, cid: &str, created_by: String, key: Value) -> Res<()> {
        let spec = self.spec(st, created_by, key);
        let id = self.b.engine().commit(cid, spec).await.map_err(api_err)?;
        st.image = Some(id.to_string());
        Ok(())
    }

    async fn run_step(&mut self, st: &mut State, ins: &Instruction) -> Res<()> {
        let cmd = match &ins.json {
            Some(l) => l.clone(),
            None => {
                let mut c = st.shell();
                c.push(ins.rest.clone());
                c
            }
        };
        if cmd.is_empty() {
            return Err(Failure::new("RUN needs a command: RUN <command>"));
        }
        // Build-time environment: ARG values that no ENV shadows, and the
        // predefined proxy args; the proxies stay out of the cache key.
        let mut env = st.env();
        let names: BTreeSet<String> = env
            .iter()
            .filter_map(|e| e.split('=').next().map(String::from))
            .collect();
        let mut key_args = Vec::new();
        for (k, v) in &st.args {
            if names.contains(k) {
                continue;
            }
            env.push(format!("{k}={v}"));
            if !PROXY_ARGS.contains(&k.as_str()) {
                key_args.push(format!("{k}={v}"));
            }
        }
        for p in PROXY_ARGS {
            if st.args.contains_key(*p) || names.contains(*p) {
                continue;
            }
            if let Some(Some(v)) = self.opts.build_args.get(*p) {
                env.push(format!("{p}={v}"));
                self.used_args.insert(p.to_string());
            }
        }
        let mut key_cmd = Vec::new();
        if !key_args.is_empty() {
            key_cmd.push(format!("|{}", key_args.len()));
            key_cmd.extend(key_args.iter().cloned());
        }
        key_cmd.extend(cmd.iter().cloned());
        let key = json!({ "Cmd": key_cmd, "Config": st.config });
        if self.cached(st, &key).await? {
            return Ok(());
        }
        let base = std::mem::take(st);
        *st = self.ensure_image(base).await?;
        let image = st.image.clone().expect("ensured");
        let cid = self.create(st, &image, cmd.clone(), env).await?;
        self.say(format!(" ---> Running in {}\n", short(&cid)))
            .await;
        let attach = AttachOptions {
            stream: true,
            logs: false,
            stdin: false,
            stdout: true,
            stderr: true,
            detach_keys: None,
        };
        let session = self.b.container_attach(&cid, attach).await?;
        // The wait subscribes now, before the start: an exit cannot slip
        // between the end of the output and the wait.
        let exited = self.b.container_wait(&cid, WaitCondition::NextExit).await?;
        self.b.container_start(&cid).await?;
        let code = self.follow(&cid, session.output, exited).await?;
        if code != 0 {
            return Err(Failure {
                message: format!(
                    "The command '{}' returned a non-zero code: {code}",
                    cmd.join(" ")
                ),
                code: Some(code),
            });
        }
        self.commit(st, &cid, key_cmd.join(" "), key).await?;
        if self.opts.remove || self.opts.force_remove {
            self.remove_container(&cid).await?;
            self.say(format!(
                " ---> Removed intermediate container {}\n",
                short(&cid)
            ))
            .await;
        }
        Ok(())
    }

    /// Streams a RUN container's output until it exited and its output
    /// ended; returns the exit code. The exit is taken from the wait, or
    /// from the container's record (checked each second), whichever comes
    /// first; after it the output gets a short grace to end, so no missed
    /// event can hold a build forever.
    async fn follow(
        &self,
        cid: &str,
        mut out: strato_api::OutputStream,
        mut exited: strato_api::WaitFuture,
    ) -> Res<i64> {
        let mut code: Option<i64> = None;
        let mut grace = 3u32;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                chunk = out.next() => {
                    let Some(Ok(chunk)) = chunk else { break };
                    let text = String::from_utf8_lossy(&chunk.data).into_owned();
                    match chunk.kind {
                        StreamKind::Stderr => self.say(format!("\u{1b}[91m{text}\u{1b}[0m")).await,
                        _ => self.say(text).await,
                    }
                }
                r = &mut exited, if code.is_none() => code = Some(r?.status_code),
                _ = tick.tick() => {
                    if code.is_some() {
                        grace -= 1;
                        if grace == 0 {
                            break;
                        }
                    } else if let Ok(r) = self.b.engine().record(cid) {
                        if let Some(s) = r.status.filter(|s| s.phase == strato_supervisor::Phase::Exited) {
                            code = Some(i64::from(s.exit_code.unwrap_or(0)));
                        }
                    }
                }
            }
        }
        match code {
            Some(c) => Ok(c),
            None => Ok(exited.await?.status_code),
        }
    }

    /// `WORKDIR`: the directory is made (as a layer) when the image lacks it.
    async fn workdir_step(&mut self, st: &mut State, ins: &Instruction, dir: &str) -> Res<()> {
        let key = json!({ "Cmd": ["/bin/sh", "-c", format!("#(nop) WORKDIR {dir}")], "Config": st.config });
        if self.cached(st, &key).await? {
            return Ok(());
        }
        let base = std::mem::take(st);
        *st = self.ensure_image(base).await?;
        let image = st.image.clone().expect("ensured");
        let cmd = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("#(nop) WORKDIR {dir}"),
        ];
        let cid = self.create(st, &image, cmd, st.env()).await?;
        let rec = self.b.engine().record(&cid).map_err(api_err)?;
        let (src, name) = copy::RootSource::of(self.b.engine(), &rec);
        let d = dir.to_string();
        let made = copy::spawn(src, move |root| {
            let missing = context::missing_dirs(root.path(), &d);
            if missing.is_empty() {
                return Ok(false);
            }
            let mut t = context::TarOut::new(Vec::new(), None);
            for m in &missing {
                t.add_dir(m)
                    .map_err(|e| copy::CopyError::Internal(e.to_string()))?;
            }
            let tar = t
                .finish()
                .map_err(|e| copy::CopyError::Internal(e.to_string()))?;
            let put = copy::PutOptions {
                path: "/".into(),
                no_overwrite_dir_non_dir: false,
                chown: Some((0, 0)),
            };
            copy::extract(root, &put, &name, &tar[..])?;
            Ok(true)
        })
        .await
        .map_err(|_| Failure::new("the WORKDIR thread ended early"))?
        .map_err(|e| Failure::new(format!("WORKDIR {dir}: {e}")))?;
        if made {
            self.commit(st, &cid, format!("/bin/sh -c #(nop) WORKDIR {dir}"), key)
                .await?;
        } else {
            // Nothing to add: a config-only image, as for metadata steps.
            self.config_only_step(st, ins, key).await?;
        }
        self.remove_container(&cid).await
    }

    /// `COPY`/`ADD` (see the module doc).
    async fn copy_step(&mut self, st: &mut State, ins: &Instruction) -> Res<()> {
        let what = ins.keyword.clone();
        let add = what == "ADD";
        let vars = st.vars();
        let esc = self.escape;
        let args: Vec<String> = match &ins.json {
            Some(l) => l
                .iter()
                .map(|w| words::expand(w, &vars, esc))
                .collect::<Result<_, _>>()
                .map_err(api_err)?,
            None => words::expand_words(&ins.rest, &vars, esc).map_err(api_err)?,
        };
        if args.len() < 2 {
            return Err(Failure::new(format!(
                "{what} requires at least two arguments, but only {} provided",
                args.len()
            )));
        }
        let (srcs, dest_raw) = args.split_at(args.len() - 1);
        let dest_raw = dest_raw[0].clone();
        if let Some(u) = srcs.iter().find(|s| is_url(s)) {
            if !add {
                return Err(Failure::new(format!(
                    "COPY failed: source can't be a URL ({u}): use ADD to download it"
                )));
            }
            if u.starts_with("git@") || u.starts_with("git://") {
                return Err(Failure::new(format!(
                    "ADD failed: {u} is a git repository, which this builder does not clone: clone it into the build context and COPY it from there"
                )));
            }
            if ins.flag("from").is_some() {
                return Err(Failure::new(format!(
                    "ADD failed: {u} is a URL and --from names an image: give one or the other"
                )));
            }
        }
        let chmod = match ins.flag("chmod") {
            None | Some("") => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        Failure::new(format!(
                            "invalid --chmod={m}: give an octal mode such as 0755"
                        ))
                    })?,
            ),
        };
        let chown = match ins.flag("chown") {
            None | Some("") => None,
            Some(c) => Some(words::expand(c, &vars, esc).map_err(api_err)?),
        };
        let wd = st.str_field("WorkingDir");
        let explicit_dir = dest_raw.ends_with('/') || dest_raw.ends_with("/.") || dest_raw == ".";
        let dest_abs = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{dest_raw}", if wd.is_empty() { "/" } else { &wd })
        };
        let dest = format!("/{}", ignore::clean(dest_abs.trim_start_matches('/')));
        let dest = if dest == "/." { "/".to_string() } else { dest };
        // The sources: from the context, or staged out of another image.
        self.seq += 1;
        let staging = self.dir.join(format!("stage-{}", self.seq));
        let from = ins.flag("from").map(|f| f.to_string());
        // Which sources were downloaded: never unpacked, as Docker does.
        let mut remote = Vec::new();
        let sources = match &from {
            None => {
                let mut all = Vec::new();
                for (k, pat) in srcs.iter().enumerate() {
                    let found = if is_url(pat) {
                        vec![
                            self.download(pat, &staging.join(format!("url-{k}")), explicit_dir)
                                .await?,
                        ]
                    } else {
                        let (ctx, pats, w) = (self.ctx(), vec![pat.clone()], what.clone());
                        self.blocking(move || {
                            context::resolve_sources(&ctx, &pats, context::Scope::Beneath, &w)
                        })
                        .await?
                    };
                    remote.extend(std::iter::repeat_n(is_url(pat), found.len()));
                    all.extend(found);
                }
                all
            }
            Some(f) => self.stage_from(st, f, srcs, &what, &staging).await?,
        };
        if sources.len() > 1 && !explicit_dir {
            return Err(Failure::new(format!(
                "When using {what} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let archives: Vec<bool> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                add && from.is_none()
                    && !remote.get(i).copied().unwrap_or(false)
                    && !s.is_dir
                    && context::is_archive(&s.path)
            })
            .collect();
        let digest = {
            let s = sources.clone();
            let w = what.clone();
            self.blocking(move || {
                context::hash_sources(&s).map_err(|e| format!("{w} failed: read the sources: {e}"))
            })
            .await?
        };
        let kind = if sources.len() == 1 && !sources[0].is_dir {
            "file"
        } else {
            "dir"
        };
        let mut flags = String::new();
        for (k, v) in &ins.flags {
            if k == "chown" || k == "chmod" {
                flags.push_str(&format!("--{k}={} ", v.as_deref().unwrap_or("")));
            }
        }
        let from_key = from.as_ref().map(|_| " from-stage").unwrap_or("");
        let text = format!("#(nop) {what} {flags}{kind}:{digest}{from_key} in {dest} ");
        let key = json!({ "Cmd": ["/bin/sh", "-c", text], "Config": st.config });
        if self.cached(st, &key).await? {
            return Ok(());
        }
        let base = std::mem::take(st);
        *st = self.ensure_image(base).await?;
        let image = st.image.clone().expect("ensured");
        let cmd = vec!["/bin/sh".into(), "-c".into(), text.clone()];
        let cid = self.create(st, &image, cmd, st.env()).await?;
        let rec = self.b.engine().record(&cid).map_err(api_err)?;
        let (src, cname) = copy::RootSource::of(self.b.engine(), &rec);
        let tar_path = self.dir.join(format!("copy-{}.tar", self.seq));
        let d2 = dest.clone();
        let single_archive = archives.len() == 1 && archives[0];
        copy::spawn(src, move |root| {
            let int = |e: std::io::Error| copy::CopyError::Internal(e.to_string());
            let rp = root.path().to_path_buf();
            let (uid, gid) = match &chown {
                None => (0, 0),
                Some(u) => {
                    let r = crate::users::resolve(&rp, u, &[]).map_err(|e| {
                        copy::CopyError::Invalid(format!(
                            "unable to convert uid/gid chown string to host mapping: {e}"
                        ))
                    })?;
                    (r.uid, r.gid)
                }
            };
            let dest_is_dir = explicit_dir
                || single_archive
                || sources.len() > 1
                || sources.first().is_some_and(|s| s.is_dir)
                || context::is_dir_in(&rp, &d2);
            let target_dir = if dest_is_dir {
                d2.clone()
            } else {
                parent_of(&d2)
            };
            let f = File::create(&tar_path).map_err(int)?;
            let mut t = context::TarOut::new(BufWriter::new(f), chmod);
            for m in context::missing_dirs(&rp, &target_dir) {
                t.add_dir(&m).map_err(int)?;
            }
            let mut to_extract = Vec::new();
            for (s, archive) in sources.iter().zip(&archives) {
                if *archive {
                    to_extract.push(s.path.clone());
                } else if s.is_dir {
                    t.add_tree(&s.path, &target_dir, false).map_err(int)?;
                } else if dest_is_dir {
                    t.add_tree(&s.path, &join_abs(&target_dir, &s.name), true)
                        .map_err(int)?;
                } else {
                    t.add_tree(&s.path, &d2, true).map_err(int)?;
                }
            }
            t.finish().map_err(int)?.flush().map_err(int)?;
            let put = copy::PutOptions {
                path: "/".into(),
                no_overwrite_dir_non_dir: false,
                chown: Some((uid, gid)),
            };
            let f = File::open(&tar_path).map_err(int)?;
            copy::extract(root, &put, &cname, f)?;
            let _ = fs::remove_file(&tar_path);
            for a in to_extract {
                let r = context::open_archive(&a).map_err(copy::CopyError::Invalid)?;
                let put = copy::PutOptions {
                    path: target_dir.clone(),
                    no_overwrite_dir_non_dir: false,
                    chown: None,
                };
                copy::extract(root, &put, &cname, r)?;
            }
            Ok(())
        })
        .await
        .map_err(|_| Failure::new(format!("the {what} thread ended early")))?
        .map_err(|e| Failure::new(format!("{what} failed: {e}")))?;
        let _ = fs::remove_dir_all(&staging);
        self.commit(st, &cid, format!("/bin/sh -c {text}"), key)
            .await?;
        self.remove_container(&cid).await
    }

    /// `COPY --from=`: the sources, copied out of a stage's (or an
    /// image's) root into `staging`.
    /// Fills the empty context `ctx` from the `remote` URL: a tar (plain or
    /// compressed) is unpacked as the context; anything else is taken as
    /// the Dockerfile, saved as `dockerfile`, in an otherwise empty
    /// context. Git repositories are refused.
    async fn remote_context(&self, remote: &str, ctx: &Path, dockerfile: &str) -> Res<()> {
        let git = remote.starts_with("git@")
            || remote.starts_with("git://")
            || remote.starts_with("github.com/")
            || (is_url(remote) && remote.split('#').next().unwrap_or("").ends_with(".git"));
        if git {
            return Err(Failure::new(format!(
                "the remote context {remote} is a git repository, which this builder does not clone: clone it and build from the directory"
            )));
        }
        if !remote.starts_with("http://") && !remote.starts_with("https://") {
            return Err(Failure::new(format!(
                "the remote context {remote} is not an http:// or https:// URL"
            )));
        }
        self.say(format!(
            "Downloading build context from remote url: {remote}\n"
        ))
        .await;
        let client = self.b.distribution().map_err(api_err)?.client().clone();
        let file = self.dir.join("remote-context");
        client
            .fetch_url(remote, &file, context::MAX_CONTEXT)
            .await
            .map_err(|e| Failure::new(format!("cannot fetch the build context: {e}")))?;
        let (ctx, name) = (ctx.to_path_buf(), dockerfile.to_string());
        self.blocking(move || {
            let mut head = Vec::with_capacity(512);
            File::open(&file)
                .and_then(|f| f.take(512).read_to_end(&mut head))
                .map_err(|e| format!("read {}: {e}", file.display()))?;
            if context::looks_like_archive(&head) {
                let f = File::open(&file).map_err(|e| e.to_string())?;
                context::unpack_context(f, &ctx)?;
            } else {
                if name.contains('/') || name == ".." {
                    return Err(format!(
                        "the remote context is a Dockerfile, so -f {name} cannot name a file in it: leave -f out"
                    ));
                }
                fs::rename(&file, ctx.join(&name))
                    .map_err(|e| format!("save the remote Dockerfile: {e}"))?;
            }
            let _ = fs::remove_file(&file);
            Ok(())
        })
        .await
    }

    /// Downloads the `ADD` source `url` into `dir` as Docker does: named
    /// after the URL's last path segment, mode 0600, the server's
    /// `Last-Modified` as its time; at most [`context::MAX_CONTEXT`] bytes.
    async fn download(&self, url: &str, dir: &Path, to_dir: bool) -> Res<context::Source> {
        let name = match strato_registry_client::file_name_of(url) {
            Some(n) => n,
            None if to_dir => {
                return Err(Failure::new(format!(
                    "ADD failed: cannot determine a file name from the URL {url}: name the destination file instead of a directory"
                )))
            }
            None => "download".to_string(),
        };
        let client = self.b.distribution().map_err(api_err)?.client().clone();
        fs::create_dir_all(dir).map_err(|e| Failure::new(format!("ADD {url}: {e}")))?;
        let path = dir.join(&name);
        let got = client
            .fetch_url(url, &path, context::MAX_CONTEXT)
            .await
            .map_err(|e| Failure::new(format!("ADD failed: {e}")))?;
        let p = path.clone();
        self.blocking(move || {
            use std::os::unix::fs::PermissionsExt;
            let f = File::options()
                .write(true)
                .open(&p)
                .map_err(|e| e.to_string())?;
            f.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            if let Some(t) = got.last_modified {
                f.set_modified(t).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await?;
        Ok(context::Source {
            path,
            name,
            is_dir: false,
        })
    }

    async fn stage_from(
        &mut self,
        st: &State,
        from: &str,
        srcs: &[String],
        what: &str,
        staging: &Path,
    ) -> Res<Vec<context::Source>> {
        let lower = from.to_ascii_lowercase();
        let stage = self
            .stages
            .iter()
            .find(|(n, _)| n.as_deref() == Some(lower.as_str()))
            .or_else(|| from.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
            .map(|(_, i)| i.clone());
        let image = match stage {
            Some(Some(i)) => i,
            Some(None) => {
                return Err(Failure::new(format!(
                    "{what} --from={from}: that stage has no files"
                )))
            }
            None => self.local_image(from).await?,
        };
        let cmd = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("#(nop) {what} --from={from}"),
        ];
        let cid = self.create(st, &image, cmd, Vec::new()).await?;
        let rec = self.b.engine().record(&cid).map_err(api_err)?;
        let (src, _) = copy::RootSource::of(self.b.engine(), &rec);
        let (pats, w, stg) = (srcs.to_vec(), what.to_string(), staging.to_path_buf());
        let res = copy::spawn(src, move |root| {
            let found = context::resolve_sources(root.path(), &pats, context::Scope::InRoot, &w)
                .map_err(copy::CopyError::Invalid)?;
            context::stage_sources(&found, &stg)
                .map_err(|e| copy::CopyError::Internal(format!("stage the sources: {e}")))
        })
        .await
        .map_err(|_| Failure::new(format!("the {what} thread ended early")));
        self.remove_container(&cid).await?;
        res?.map_err(|e| Failure::new(e.to_string()))
    }

    /// Removes what the build leaves: its containers (kept after a failure
    /// only with `rm=false`) and its directory.
    async fn cleanup(&mut self, ok: bool) {
        let remove = self.opts.remove || self.opts.force_remove;
        for cid in std::mem::take(&mut self.containers) {
            if !remove && !ok {
                continue;
            }
            let opts = RemoveOptions {
                force: true,
                volumes: true,
                link: false,
            };
            if let Err(e) = self.b.container_remove(&cid, opts).await {
                tracing::warn!(container = %cid, error = %e.message, "cannot remove a build container");
            }
        }
        let dir = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || fs::remove_dir_all(dir)).await;
    }
}

fn parent_of(p: &str) -> String {
    match p.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((d, _)) => d.to_string(),
    }
}

fn join_abs(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// Whether an `ADD` source is a URL rather than a path in the context.
fn is_url(s: &str) -> bool {
    ["http://", "https://", "git://", "git@"]
        .iter()
        .any(|p| s.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_split() {
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(join_abs("/", "x"), "/x");
        assert_eq!(join_abs("/a/", "x"), "/a/x");
    }

    #[test]
    fn state_vars_put_env_over_args() {
        let mut st = State::default();
        st.args.insert("A".into(), "arg".into());
        st.args.insert("B".into(), "arg".into());
        st.set_env("A", "env");
        let v = st.vars();
        assert_eq!(v["A"], "env");
        assert_eq!(v["B"], "arg");
        assert_eq!(st.shell(), ["/bin/sh", "-c"]);
    }

    proptest::proptest! {
        // Dockerfiles, words and .dockerignore files are client input: any
        // text gives a result or an error, never a panic.
        #[test]
        fn parsers_take_any_text(s in "\\PC{0,160}") {
            if let Ok(df) = dockerfile::parse(&s) {
                let _ = dockerfile::stages(&df);
            }
            let vars = Vars::new();
            let _ = words::expand(&s, &vars, '\\');
            let _ = words::expand_words(&s, &vars, '`');
            let _ = words::key_values(&s, '\\', "ENV");
            let pats = ignore::parse_ignore(&s);
            let _ = ignore::excluded("a/b/c.txt", &pats);
            let _ = ignore::glob_match(&s, "a/b", true);
        }

        #[test]
        fn dockerfile_like_text(s in "(FROM |RUN |COPY |ENV |ARG |ONBUILD |# escape=`|\\\\|`|\n| |--from=|\\$\\{|:-|\\}|\\[\"|\"\\]|[a-z=\"'])*") {
            if let Ok(df) = dockerfile::parse(&s) {
                let _ = dockerfile::stages(&df);
                for i in &df.instructions {
                    let _ = words::expand_words(&i.rest, &Vars::new(), df.escape);
                }
            }
        }

        #[test]
        fn plain_names_match_themselves(s in "[a-z0-9][a-z0-9._-]{0,29}") {
            proptest::prop_assert!(ignore::glob_match(&s, &s, false));
            let pats = ignore::parse_ignore(&s);
            proptest::prop_assert!(ignore::excluded(&s, &pats));
            let below = [s.as_str(), "below"].join("/");
            proptest::prop_assert!(ignore::excluded(&below, &pats));
        }
    }

    #[test]
    fn failures_carry_the_exit_code() {
        let f = Failure {
            message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3".into(),
            code: Some(3),
        };
        let m = serde_json::to_value(f.into_message()).unwrap();
        assert_eq!(m["errorDetail"]["code"], 3);
        assert_eq!(m["error"], m["errorDetail"]["message"]);
    }
}

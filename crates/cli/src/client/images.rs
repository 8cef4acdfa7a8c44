//! Image verbs: images, load, save, import, tag, rmi, pull, push.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use strato_client::types::*;
use strato_client::{reader_stream, Client};
use tokio::io::AsyncWriteExt;

use super::format::{self, Table};
use super::progress;
use super::template::Template;
use super::{now, report};

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images).
    #[arg(short = 'a', long)]
    all: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided (key=value).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format each image with a template ({{.Repository}}:{{.Tag}}…).
    #[arg(long)]
    format: Option<String>,
    /// Only images of this repository[:tag].
    reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (name:tag) of the image; repeatable.
    #[arg(short = 't', long = "tag")]
    tag: Vec<String>,
    /// The Dockerfile (default: PATH/Dockerfile); it must be inside PATH.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// A build-time variable: KEY=VALUE, or KEY to take it from the environment.
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// A label of the image: KEY=VALUE.
    #[arg(long)]
    label: Vec<String>,
    /// The build stage to stop at.
    #[arg(long)]
    target: Option<String>,
    /// Take no step from the cache.
    #[arg(long)]
    no_cache: bool,
    /// Print only the image ID.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Remove intermediate containers after a successful build.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    rm: bool,
    /// Always remove intermediate containers.
    #[arg(long)]
    force_rm: bool,
    /// Network of the RUN steps (bridge, host, none or a network name).
    #[arg(long)]
    network: Option<String>,
    /// The build context: a directory.
    path: PathBuf,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from a tar archive file instead of STDIN.
    #[arg(short = 'i', long)]
    input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file instead of STDOUT.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the created image (CMD, ENV, …).
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Set a commit message for the imported image.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Set the platform.
    #[arg(long)]
    platform: Option<String>,
    /// A tar file, or - for STDIN.
    file: String,
    /// REPOSITORY[:TAG] of the new image.
    reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image.
    #[arg(short = 'f', long)]
    force: bool,
    /// Do not delete untagged parents.
    #[arg(long)]
    no_prune: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Suppress verbose output.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Set the platform.
    #[arg(long)]
    platform: Option<String>,
    name: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Suppress verbose output.
    #[arg(short = 'q', long)]
    quiet: bool,
    name: String,
}

pub async fn images(c: &Client, a: ImagesArgs) -> Result<i32> {
    let mut filters = super::opts::parse_filters(&a.filter)?;
    if let Some(r) = &a.reference {
        filters
            .0
            .entry("reference".into())
            .or_default()
            .push(r.clone());
    }
    let list = c
        .image_list(&ImageListOptions {
            all: a.all,
            filters,
            ..Default::default()
        })
        .await?;
    let trunc = !a.no_trunc;
    let id = |s: &str| {
        if trunc {
            format::short_id(s)
        } else {
            s.to_string()
        }
    };
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for i in &list {
            if seen.insert(i.id.clone()) {
                println!("{}", id(&i.id));
            }
        }
        return Ok(0);
    }
    let now = now() as i64;
    // One row per tag; untagged images as <none> <none>.
    let mut rows = Vec::new();
    for i in &list {
        let refs: Vec<(String, String)> = if i.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.repo_tags
                .iter()
                .map(|t| format::split_reference(t))
                .collect()
        };
        for (repo, tag) in refs {
            rows.push((repo, tag, i));
        }
    }
    if let Some(f) = &a.format {
        let t = Template::parse(f)?;
        for (repo, tag, i) in rows {
            let v = serde_json::json!({
                "ID": id(&i.id), "Repository": repo, "Tag": tag,
                "CreatedSince": format::time_ago(i.created, now),
                "CreatedAt": strato_image::time::format(i.created, 0),
                "Size": format::human_size(i.size), "Digest": i.repo_digests.first().cloned().unwrap_or_else(|| "<none>".into()),
            });
            println!("{}", t.render(&v)?);
        }
        return Ok(0);
    }
    let mut t = Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    for (repo, tag, i) in rows {
        t.row(vec![
            repo,
            tag,
            id(&i.id),
            format::time_ago(i.created, now),
            format::human_size(i.size),
        ]);
    }
    print!("{}", t.render());
    Ok(0)
}

async fn open_input(path: Option<&std::path::Path>) -> Result<strato_client::ByteStream> {
    Ok(match path {
        Some(p) => {
            let f = tokio::fs::File::open(p)
                .await
                .with_context(|| format!("open {}", p.display()))?;
            reader_stream(f)
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is a terminal; give -i FILE or redirect a tar archive");
            }
            reader_stream(tokio::io::stdin())
        }
    })
}

/// The context directory as a tar in an anonymous temporary file (names
/// relative to it; symlinks kept as symlinks), without what `.dockerignore`
/// excludes; the Dockerfile (`keep`) and `.dockerignore` always go, the
/// daemon drops them when they are excluded, as docker does.
fn context_tar(dir: &std::path::Path, keep: &str) -> Result<std::fs::File> {
    use std::io::{Seek, Write};
    use strato_engine::build::ignore;
    struct Walk<'a> {
        root: &'a std::path::Path,
        patterns: Vec<ignore::Pattern>,
        exceptions: bool,
        keep: &'a str,
    }
    impl Walk<'_> {
        fn dir(
            &self,
            b: &mut tar::Builder<std::io::BufWriter<std::fs::File>>,
            rel: &str,
        ) -> Result<()> {
            let dir = self.root.join(rel);
            let mut names: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("read {}", dir.display()))?
                .collect::<std::io::Result<Vec<_>>>()?;
            names.sort_by_key(|e| e.file_name());
            for e in names {
                let name = e.file_name().to_string_lossy().into_owned();
                let r = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let is_dir = e.file_type()?.is_dir();
                let out =
                    ignore::excluded(&r, &self.patterns) && r != self.keep && r != ".dockerignore";
                // An excluded directory is still read when an exception
                // may bring back something below it.
                if out && !(is_dir && self.exceptions) {
                    continue;
                }
                if !out {
                    let full = self.root.join(&r);
                    b.append_path_with_name(&full, &r)
                        .with_context(|| format!("add {} to the build context", full.display()))?;
                }
                if is_dir {
                    self.dir(b, &r)?;
                }
            }
            Ok(())
        }
    }
    let patterns = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| ignore::parse_ignore(&t))
        .unwrap_or_default();
    let w = Walk {
        root: dir,
        exceptions: patterns.iter().any(|p| p.exception),
        patterns,
        keep,
    };
    let f = tempfile::tempfile().context("create a temporary file for the build context")?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(f));
    b.follow_symlinks(false);
    w.dir(&mut b, "")?;
    let mut f = b.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    f.flush()?;
    f.rewind()?;
    Ok(f)
}

/// The options of `strato build` but the context and Dockerfile.
fn build_options(a: &BuildArgs) -> BuildOptions {
    let mut build_args = std::collections::BTreeMap::new();
    for kv in &a.build_arg {
        match kv.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), Some(v.to_string())),
            None => build_args.insert(kv.clone(), std::env::var(kv).ok()),
        };
    }
    let labels = a
        .label
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    BuildOptions {
        tags: a.tag.clone(),
        build_args,
        labels,
        target: a.target.clone().unwrap_or_default(),
        quiet: a.quiet,
        no_cache: a.no_cache,
        remove: a.rm,
        force_remove: a.force_rm,
        network_mode: a.network.clone().unwrap_or_default(),
        ..Default::default()
    }
}

pub async fn build(c: &Client, a: BuildArgs) -> Result<i32> {
    let ctx = std::fs::canonicalize(&a.path)
        .with_context(|| format!("unable to prepare context: path {:?} not found", a.path))?;
    if !ctx.is_dir() {
        bail!(
            "unable to prepare context: {} is not a directory: give the directory holding the Dockerfile",
            a.path.display()
        );
    }
    let dockerfile = match &a.file {
        None => String::new(),
        Some(f) => {
            let full = std::fs::canonicalize(f)
                .with_context(|| format!("the Dockerfile {} does not exist", f.display()))?;
            match full.strip_prefix(&ctx) {
                Ok(rel) => rel.to_string_lossy().into_owned(),
                Err(_) => bail!(
                    "the Dockerfile ({}) must be inside the build context ({})",
                    f.display(),
                    ctx.display()
                ),
            }
        }
    };
    let opts = BuildOptions {
        dockerfile,
        ..build_options(&a)
    };
    let dir = ctx.clone();
    let keep = if opts.dockerfile.is_empty() {
        "Dockerfile".to_string()
    } else {
        opts.dockerfile.clone()
    };
    let file = tokio::task::spawn_blocking(move || context_tar(&dir, &keep)).await??;
    let body = reader_stream(tokio::fs::File::from_std(file));
    let p = c.build(body, &opts).await?;
    progress::render(p, &mut std::io::stdout()).await?;
    Ok(0)
}

pub async fn load(c: &Client, a: LoadArgs) -> Result<i32> {
    let body = open_input(a.input.as_deref()).await?;
    let p = c.image_load(body, a.quiet).await?;
    progress::render(p, &mut std::io::stdout()).await?;
    Ok(0)
}

pub async fn save(c: &Client, a: SaveArgs) -> Result<i32> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal; use the -o flag or redirect");
    }
    let mut body = c.image_save(&a.images).await?;
    match &a.output {
        Some(path) => {
            // Written beside the target and renamed at the end: a failed save
            // leaves no partial archive.
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = dir.join(format!(".{name}.strato-save-{}", std::process::id()));
            let result = async {
                let mut f = tokio::fs::File::create(&tmp)
                    .await
                    .with_context(|| format!("create {}", tmp.display()))?;
                while let Some(chunk) = body.next().await {
                    f.write_all(&chunk?)
                        .await
                        .with_context(|| format!("write {}", tmp.display()))?;
                }
                f.sync_all().await?;
                tokio::fs::rename(&tmp, path)
                    .await
                    .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            result?;
        }
        None => {
            let mut out = tokio::io::stdout();
            while let Some(chunk) = body.next().await {
                out.write_all(&chunk?).await?;
            }
            out.flush().await?;
        }
    }
    Ok(0)
}

pub async fn import(c: &Client, a: ImportArgs) -> Result<i32> {
    let body = if a.file == "-" {
        open_input(None).await?
    } else if a.file.contains("://") {
        bail!(
            "importing from a URL ({}) is not supported; download it and give the file",
            a.file
        );
    } else {
        open_input(Some(std::path::Path::new(&a.file))).await?
    };
    let (repo, tag) = match &a.reference {
        Some(r) => format::split_reference(r),
        None => (String::new(), String::new()),
    };
    let p = c
        .image_import(
            body,
            &ImportOptions {
                from_src: "-".into(),
                repo,
                tag,
                message: a.message.unwrap_or_default(),
                changes: a.change,
                platform: a.platform.unwrap_or_default(),
            },
        )
        .await?;
    progress::render(p, &mut std::io::stdout()).await?;
    Ok(0)
}

pub async fn tag(c: &Client, a: TagArgs) -> Result<i32> {
    let (repo, tag) = format::split_reference(&a.target);
    c.image_tag(&a.source, &repo, &tag).await?;
    Ok(0)
}

pub async fn rmi(c: &Client, a: RmiArgs) -> Result<i32> {
    let mut code = 0;
    for name in &a.images {
        match c.image_remove(name, a.force, a.no_prune).await {
            Ok(items) => {
                for i in items {
                    if let Some(u) = i.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = i.deleted {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                report(&e.into());
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn pull(c: &Client, a: PullArgs) -> Result<i32> {
    let (repo, tag) = format::split_reference(&a.name);
    let p = c
        .image_pull(&PullOptions {
            from_image: repo.clone(),
            tag: tag.clone(),
            platform: a.platform.unwrap_or_default(),
            auth: None,
        })
        .await?;
    if a.quiet {
        strato_client::check_progress(p).await?;
    } else {
        progress::render(p, &mut std::io::stdout()).await?;
    }
    let sep = if tag.starts_with("sha256:") { '@' } else { ':' };
    println!("{repo}{sep}{tag}");
    Ok(0)
}

pub async fn push(c: &Client, a: PushArgs) -> Result<i32> {
    let (repo, tag) = format::split_reference(&a.name);
    let p = c.image_push(&repo, &tag, None).await?;
    if a.quiet {
        strato_client::check_progress(p).await?;
        println!("{repo}:{tag}");
    } else {
        progress::render(p, &mut std::io::stdout()).await?;
    }
    Ok(0)
}

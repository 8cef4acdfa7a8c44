#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let r = strato_registry::Registry::open(strato_registry::Config::new(&a[2])).unwrap();
    let l = strato_registry::bind(&a[1]).await.unwrap();
    r.serve(l, None).await.unwrap();
}

// Deploy-time settings: config.json is written next to the pages when the stack publishes them.
export interface CatalogueEntry {
  product_id: string;
  name: string;
}

export interface Config {
  apiUrl: string;
  region: string;
  cognitoUrl: string;
  userPoolId: string; // SRP signs over the pool's name (the part after the region)
  userPoolClientId: string;
  holdSeconds: number;
  refreshSeconds: number;
  products: CatalogueEntry[];
  // The WebSocket API that pushes stock changes; "" (or absent, before it existed): the pages poll.
  websocketUrl: string;
}

export async function loadConfig(): Promise<Config> {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) {
    throw new Error(`config.json could not be loaded (HTTP ${response.status}); was the frontend published?`);
  }
  const config = (await response.json()) as Config;
  config.websocketUrl ??= "";
  return config;
}

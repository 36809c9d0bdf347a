/** The two databases the store runs on; migrations and repositories branch on it where SQL differs. */
export type StoreDialect = 'sqlite' | 'postgres'

CREATE TABLE modelyard_meta (
	key VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY (key)
);

CREATE TABLE tasks (
	id VARCHAR(32) NOT NULL, 
	project TEXT NOT NULL, 
	name TEXT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	output_uri TEXT, 
	tags TEXT NOT NULL, 
	created FLOAT NOT NULL, 
	updated FLOAT NOT NULL, 
	project_key VARCHAR(32), 
	name_key VARCHAR(32), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_tasks_project_name_key ON tasks (project_key, name_key, created);

CREATE STATISTICS IF NOT EXISTS st_tasks_project_key (dependencies) ON project_key, project FROM tasks;

CREATE STATISTICS IF NOT EXISTS st_tasks_name_key (dependencies) ON name_key, name FROM tasks;

CREATE TABLE models (
	id VARCHAR(32) NOT NULL, 
	task_id VARCHAR(32), 
	project TEXT NOT NULL, 
	name TEXT NOT NULL, 
	comment TEXT NOT NULL, 
	framework TEXT, 
	config_text TEXT, 
	labels TEXT, 
	tags TEXT NOT NULL, 
	system_tags TEXT NOT NULL, 
	published BOOLEAN NOT NULL, 
	archived BOOLEAN NOT NULL, 
	base_model_id VARCHAR(32), 
	upload_uri TEXT, 
	version_count INTEGER NOT NULL, 
	created FLOAT NOT NULL, 
	updated FLOAT NOT NULL, 
	project_key VARCHAR(32), 
	name_key VARCHAR(32), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_models_project_key_created ON models (project_key, created, id);

CREATE INDEX ix_models_name_key_created ON models (name_key, created, id);

CREATE INDEX ix_models_created_id ON models (created, id);

CREATE INDEX ix_models_task ON models (task_id);

CREATE STATISTICS IF NOT EXISTS st_models_project_key (dependencies) ON project_key, project FROM models;

CREATE STATISTICS IF NOT EXISTS st_models_name_key (dependencies) ON name_key, name FROM models;

CREATE TABLE destinations (
	uri TEXT NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (uri)
);

CREATE TABLE model_tags (
	model_id VARCHAR(32) NOT NULL, 
	tag_key VARCHAR(32) NOT NULL, 
	tag TEXT NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (model_id, tag_key), 
	FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
);

CREATE INDEX ix_model_tags_key_created ON model_tags (tag_key, created, model_id);

CREATE STATISTICS IF NOT EXISTS st_model_tags_tag_key (dependencies) ON tag_key, tag FROM model_tags;

CREATE TABLE versions (
	id SERIAL NOT NULL, 
	model_id VARCHAR(32) NOT NULL, 
	version INTEGER NOT NULL, 
	iteration BIGINT, 
	uri TEXT NOT NULL, 
	file_name TEXT NOT NULL, 
	package_format VARCHAR(8), 
	size BIGINT, 
	sha256 VARCHAR(64), 
	state VARCHAR(16) NOT NULL, 
	error TEXT, 
	tags TEXT NOT NULL, 
	meta TEXT NOT NULL, 
	pinned BOOLEAN NOT NULL, 
	job TEXT, 
	owner TEXT, 
	host TEXT, 
	created FLOAT NOT NULL, 
	updated FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_versions_model_version UNIQUE (model_id, version), 
	FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
);

CREATE INDEX ix_versions_state_host ON versions (state, host);

CREATE INDEX ix_versions_uri ON versions (uri);

CREATE INDEX ix_versions_sha ON versions (model_id, sha256);

CREATE TABLE task_models (
	task_id VARCHAR(32) NOT NULL, 
	model_id VARCHAR(32) NOT NULL, 
	role VARCHAR(8) NOT NULL, 
	name TEXT, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (task_id, model_id, role), 
	FOREIGN KEY(task_id) REFERENCES tasks (id) ON DELETE CASCADE, 
	FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
);

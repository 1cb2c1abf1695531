DROP TABLE cells;
DROP TABLE notebooks;
DROP TABLE users;
